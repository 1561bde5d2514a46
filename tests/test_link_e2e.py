"""End to end over a real pty on the virtual boards: firmware + link + ``ndyn stream``.

* the firmware's frame kernels (frm: CRC + COBS out; scan + chk: a frame in;
  copy) inside real MicroPython, byte-identical to the host's frames: current
  MicroPython (mpy-wasm: the plain-Python fwcobs, called through fwplain.call
  as fwd calls it) and MicroPython 1.9.2 on the virtual micro:bit (the Thumb
  kernels in fwk.bin, laid out by neurondyn.thumb, found and checked by the
  board's F and called through fwxa.X);
* mpy-wasm board (the sys.stdin.buffer backend of ESP32/RP2040/pyboard):
  stream a 30 -> 12 model's data -> board predictions equal ``Model.predict``
  within 1e-4 (|host| + rms(host)); bad rows (non-positive input, NaN) are
  per-row errors and the board keeps serving; int16 inputs; upload of a second
  model into the running board -> it serves the new model;
* virtual micro:bit V1 (microbit.uart backend, 64-byte UART buffer, the
  Thumb kernels in fwk.bin): the whole firmware moves frames of every size up
  to the 60-byte wire limit through the emulated UART without loss; the same
  30 -> 12 stream with parity, bad rows and int16, and an upload of a second
  model (through the V1's restarts into and out of its upload mode).
"""
import json
import os
import random

import numpy as np
import pytest

from neurondyn import boards, cli, deploy, ndm, protocol as P
from neurondyn.errors import DeviceError
from neurondyn.link import Board
from neurondyn.bench.problems import random_crystal
from neurondyn.model import Model
from neurondyn.paths import firmware_dir
from neurondyn.vboard import MicrobitSession, MicrobitVM, WasmBoard, run_on_wasm


def power_model(d_in=30, d_out=12, k=6, seed=0):
    """A crystallised model like the annealer's: k atoms with 2-4 non-zero exponents."""
    return random_crystal(d_in, d_out, k, seed, output_prefix="act")


def parity_ok(dev, host):
    rms = np.sqrt(np.mean(host ** 2))
    return np.abs(dev - host) <= 1e-4 * (np.abs(host) + rms)


def write_csv(path, names, rows):
    with open(path, "w") as fh:
        fh.write(",".join(["t"] + names) + "\n")
        for i, r in enumerate(rows):
            fh.write(",".join([str(i)] + ["" if np.isnan(v) else repr(float(v)) for v in r]) + "\n")


def stream(capsys, *argv):
    code = cli.main(["stream"] + list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out.strip().splitlines()[-1]), out.err


def sample_rows(n, d_in, seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, size=(n, d_in))


# -- frame kernels inside real MicroPython ------------------------------------
# payloads as expressions both Pythons evaluate (a 250-byte literal would not
# compile in the V1's heap)
VECTOR_SRC = [(1, 0, "bytes(0)"), (4, 7, "bytes(range(53))"), (0x84, 255, "bytes(20)"),
              (0xFF, 3, "bytes([0, 1, 2, 0, 0, 255, 254])"), (0x81, 9, "bytes(range(1, 251))")]
VECTORS = [(t, s, eval(e)) for t, s, e in VECTOR_SRC]

KERNEL_SCRIPT = """
def frame(t, s, p):
    raw = bytearray(len(p) + 4)
    raw[0] = t
    raw[1] = s
    for i in range(len(p)):
        raw[2 + i] = p[i]
    tx = bytearray(len(raw) + 6)
    n = X(tx, raw, len(p) + 2, FRM)
    # read it back the way the board does: scan in 7-byte reads, then chk
    rx = bytearray(len(raw) + 80)
    ch = bytearray(7)
    pos = 0
    got = -1
    for a in range(0, n, 7):
        m = min(7, n - a)
        for i in range(m):
            ch[i] = tx[a + i]
        st = 0
        while st < m:
            r = X(rx, ch, pos | st << 11 | m << 19, SCAN)
            if not r & 0x800:
                pos = r & 0x7FF
                break
            st = r >> 12
            k = r & 0x7FF
            pos = 0
            if k:
                got = X(rx, k, 0, CHK)
    cp = bytearray(8)
    X(cp, raw, 3 | 0 << 14 | 4 << 21, COPY)
    print(TAG, n, end=' ')
    for i in range(n):
        print('%02x' % tx[i], end='')
    print('', got, end=' ')
    for v in cp:
        print('%02x' % v, end='')
    print()
"""


def kernel_calls():
    return "\n".join("frame(%d, %d, %s)" % v for v in VECTOR_SRC)


def check_kernel_output(out, tag):
    """Each line: tag, wire length, wire hex, chk's decoded length, copy result: as
    the host says."""
    rows = [ln.split() for ln in out.strip().splitlines() if ln.startswith(tag)]
    assert len(rows) == len(VECTORS), out
    for (t, s, p), row in zip(VECTORS, rows):
        wire = P.build_frame(t, s, p)
        assert int(row[1]) == len(wire) and row[2] == wire.hex(), (t, s)
        assert int(row[3]) == len(p) + 4
        raw = P.cobs_decode(wire[1:-1])
        assert row[4] == (b"\x00" * 3 + raw[0:4] + b"\x00").hex()


def entry(name):
    """The index of a kernel in E (fwd's tuple; kernels.ENTRIES is its order)."""
    from neurondyn.kernels import ENTRIES
    (i,) = [i for i, (_, n) in enumerate(ENTRIES) if n == name]
    return i


def test_plain_kernels_in_current_micropython():
    files = {n: (firmware_dir() / n).read_bytes() for n in ("fwcobs.py", "fwplain.py")}
    script = ("from fwcobs import chk, frm, scan, copy\nfrom fwplain import call as X\n"
              "TAG, CHK, FRM, SCAN, COPY = 'W', chk, frm, scan, copy\n"
              + KERNEL_SCRIPT + kernel_calls() + "\n")
    check_kernel_output(run_on_wasm(files, script, timeout=60), "W")


# -- mpy-wasm board ------------------------------------------------------------
@pytest.fixture(scope="module")
def wasm_board():
    model = power_model()
    blob = ndm.dumps(model)
    files = deploy.image_files(boards.get_profile("mpy-wasm"), blob)
    board = WasmBoard(files=files)
    try:
        info = deploy.wait_for_hello(board.port, 30)
        assert info is not None, board.log()
        yield board, model, blob
    finally:
        log = board.log()
        board.stop()
        assert "Traceback" not in log, log


def test_wasm_stream_parity_and_bad_rows(wasm_board, tmp_path, capsys):
    board, model, blob = wasm_board
    rows = sample_rows(40, 30, 1)
    rows[5, 3] = -0.25            # maps to x <= 0
    rows[11, 0] = np.nan          # a missing cell
    rows[12, 7] = 0.0
    data = tmp_path / "data.csv"
    write_csv(data, model.inputs, rows)
    mpath = tmp_path / "m.ndm"
    mpath.write_bytes(blob)
    out = tmp_path / "out.csv"
    summary, err = stream(capsys, "--port", board.port, str(data), "-o", str(out), "--json",
                          "--model", str(mpath))
    for key in ("samples", "answered", "errors", "retransmits", "seconds", "samples_per_s",
                "device_us_per_inference", "wire_bytes_per_sample"):
        assert key in summary
    assert summary["samples"] == 40 and summary["errors"] == 3
    lines = out.read_text().strip().splitlines()
    assert lines[0].split(",") == model.outputs + ["error"]
    bad = {5, 11, 12}
    got = np.full((40, 12), np.nan)
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        if i in bad:
            assert cells[-1] == "bad input" and all(c == "" for c in cells[:-1])
        else:
            assert cells[-1] == ""
            got[i] = [float(c) for c in cells[:-1]]
    ok = np.array([i not in bad for i in range(40)])
    host = model.predict(rows[ok])
    assert np.all(parity_ok(got[ok], host))
    assert "3 of 40 rows refused" in err
    # the board keeps serving after the bad rows
    with Board.open(board.port) as b:
        p, s = b.infer(rows[ok][:3])
        assert not s.any() and np.all(parity_ok(p, host[:3]))


def test_wasm_stream_int16(wasm_board, tmp_path, capsys):
    board, model, blob = wasm_board
    rows = sample_rows(25, 30, 2)
    data = tmp_path / "data.csv"
    write_csv(data, model.inputs, rows)
    summary, _ = stream(capsys, "--port", board.port, str(data), "--json", "--int16",
                        "--inputs", ",".join(model.inputs))
    assert summary["errors"] == 0 and summary["format"] == "int16"
    # int16 carries half the input bytes of float32
    summary32, _ = stream(capsys, "--port", board.port, str(data), "--json")
    assert summary["wire_bytes_per_sample"] < summary32["wire_bytes_per_sample"]


def test_wasm_upload_second_model_then_serves_it():
    first = power_model(d_in=8, d_out=2, k=2, seed=4)
    files = deploy.image_files(boards.get_profile("mpy-wasm"), ndm.dumps(first))
    second = power_model(d_in=6, d_out=3, k=3, seed=7)
    with WasmBoard(files=files) as board:
        assert deploy.wait_for_hello(board.port, 30) is not None, board.log()
        with Board.open(board.port) as b:
            rows = sample_rows(4, 8, 1)
            p, s = b.infer(rows)
            assert np.all(parity_ok(p, first.predict(rows)))
            info = b.upload(ndm.dumps(second))
            assert (info["d_in"], info["d_out"], info["k"]) == (6, 3, 3)
            assert info["model_hash"] == ndm.model_hash(ndm.dumps(second))
            rows = sample_rows(10, 6, 3)
            p, s = b.infer(rows)
            assert not s.any() and np.all(parity_ok(p, second.predict(rows)))
        assert "Traceback" not in board.log(), board.log()


# -- virtual micro:bit V1 ------------------------------------------------------
def test_asm_kernels_in_micropython_1_9_2():
    from neurondyn import kernels, thumb
    files = {thumb.BLOB_NAME: kernels.blob()}         # first: consecutive chunks
    finders = [n for n in ("fwxa.py", "fwxf.py") if (firmware_dir() / n).is_file()]
    files.update({n: (firmware_dir() / n).read_bytes() for n in finders})
    with MicrobitSession(files) as s:
        # in small pieces: each script is compiled in the V1's ~9 KB heap
        s.run("import fwxa\nX, P = fwxa.X, fwxa.P\n")
        # F: where fwk.bin is (fwxa's, or fwxf's where the boot finds it first thing)
        s.run("try:\n F = fwxa.F\nexcept AttributeError:\n from fwxf import F\n"
              "a = F(0x30000)\nprint(a)\n")
        s.run("E = tuple(a + P(a + 20 + 2 * i) + 1 for i in range(P(a + 14)))\n"
              "TAG, CHK, FRM, SCAN, COPY = 'M', E[%d], E[%d], E[%d], E[%d]\n"
              % tuple(entry(n) for n in ("chk", "frm", "scan", "copy")))
        assert s.run("print(len(E), a > 0x30000)").split() == [str(len(kernels.ENTRIES)), "True"]
        s.run(KERNEL_SCRIPT)
        out = "".join(s.run("frame(%d, %d, %s)\n" % v, timeout=60) for v in VECTOR_SRC)
        check_kernel_output(out, "M")


def test_v1_firmware_moves_max_size_frames_without_loss():
    """The whole V1 firmware behind the emulated 64-byte UART buffer: frames of
    every size up to the 60-byte wire limit, each answered, none lost or
    corrupted (no retransmission, no NAK, the board's own counters clean)."""
    from neurondyn.link import Transport
    files = deploy.image_files(boards.get_profile("microbit-v1"))
    with MicrobitVM(files=files) as vm:
        info = deploy.wait_for_hello(vm.port, 60, give_up=vm.boot_error)
        assert info is not None, vm.boot_error() or vm.console_log()[-400:]
        assert info["max_payload"] == 53 and info["board"] == "microbit-v1"
        b = Board(Transport(vm.port), timeout=1.0)
        try:
            b.hello()
            before = b.stats()
            b.retransmits = b.naks = 0
            rng = random.Random(1)
            for i in range(150):
                size = rng.choice([1, 2, 17, 40, 52, 53])
                payload = bytes([1]) + bytes(rng.randrange(256) for _ in range(size - 1))
                assert len(P.build_frame(P.HELLO, 0, payload)) <= 60
                rtype, body = b._exchange(P.HELLO, payload, 1.0, "HELLO")
                assert rtype == P.HELLO | P.REPLY and P.parse_hello(body)["proto"] == 1, i
            # stop-and-wait keeps every frame inside the UART buffer: nothing lost
            assert b.retransmits == 0 and b.naks == 0
            after = b.stats()
            assert after["bad_crc"] == before["bad_crc"] and after["bad_frame"] == before["bad_frame"]
            assert after["frames_ok"] - before["frames_ok"] == 151     # the HELLOs and a STATS
        finally:
            b.close()
        assert "Traceback" not in vm.console_log()


def test_v1_stream_parity_int16_and_upload_through_restarts():
    model = power_model()
    blob = ndm.dumps(model)
    files = deploy.image_files(boards.get_profile("microbit-v1"), blob)
    with MicrobitVM(files=files) as vm:
        info = deploy.wait_for_hello(vm.port, 60, give_up=vm.boot_error)
        assert info is not None, vm.boot_error() or vm.console_log()[-400:]
        assert info["model_hash"] == ndm.model_hash(blob) and info["fast_paths"]
        with Board.open(vm.port, timeout=1.0) as b:
            rows = sample_rows(12, 30, 4)
            rows[3, 5] = -0.5                     # maps to x <= 0
            rows[8, 0] = np.nan
            p, s = b.infer(rows)
            ok = s == 0
            assert list(np.flatnonzero(~ok)) == [3, 8] and set(s[~ok]) == {P.E_BAD_INPUT}
            assert np.all(parity_ok(p[ok], model.predict(rows[ok])))
            p16, s16 = b.infer(rows, int16=True)
            assert list(np.flatnonzero(s16)) == [3, 8]
            deq = P.dequantize_int16(P.quantize_int16(rows, *b._qscale), *b._qscale)
            assert np.all(parity_ok(p16[ok], model.predict(deq[ok])))
            second = power_model(d_in=6, d_out=3, k=3, seed=7)
            info = b.upload(ndm.dumps(second))
            assert (info["d_in"], info["d_out"], info["k"]) == (6, 3, 3)
            assert info["model_hash"] == ndm.model_hash(ndm.dumps(second))
            rows = sample_rows(5, 6, 3)
            p, s = b.infer(rows)
            assert not s.any() and np.all(parity_ok(p, second.predict(rows)))
        assert "Traceback" not in vm.console_log()
