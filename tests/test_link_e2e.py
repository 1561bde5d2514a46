"""End to end over a real pty on the virtual boards: firmware + link + ``ndyn stream``.

* the firmware's frame kernels inside real MicroPython: current MicroPython
  (mpy-wasm: the plain-Python fwcobs) and MicroPython 1.9.2 on the virtual
  micro:bit (fwkl, pre-assembled from firmware/asm/fwcasm.py), byte-identical to the host's frames;
* mpy-wasm board (the sys.stdin.buffer backend of ESP32/RP2040/pyboard):
  stream a 30 -> 12 model's data -> board predictions equal ``Model.predict``
  within 1e-4 (|host| + rms(host)); bad rows (non-positive input, NaN) are
  per-row errors and the board keeps serving; int16 inputs; upload of a second
  model into the running board -> it serves the new model;
* virtual micro:bit V1 (microbit.uart backend, 64-byte UART buffer): the same
  stream and parity through the emulated UART, plus heap and device timings.
"""
import json
import os
import random

import numpy as np
import pytest

from neurondyn import boards, cli, deploy, ndm, protocol as P
from neurondyn.errors import DeviceError
from neurondyn.link import Board
from neurondyn.model import Model
from neurondyn.paths import firmware_dir
from neurondyn.vboard import MicrobitSession, MicrobitVM, WasmBoard, run_on_wasm


def power_model(d_in=30, d_out=12, k=6, seed=0):
    """A crystallised model like the annealer's: k atoms with 2-4 non-zero exponents."""
    rng = np.random.default_rng(seed)
    w = np.zeros((k, d_in))
    for a in range(k):
        js = rng.choice(d_in, size=rng.integers(2, 5), replace=False)
        w[a, js] = rng.choice([-2, -1, 1, 2], size=js.size)
    names = ["s%02d" % j for j in range(d_in)]
    outs = ["act%d" % i for i in range(d_out)]
    return Model(np.zeros(d_in), np.ones(d_in), w, rng.uniform(-1, 1, k),
                 rng.uniform(-2, 2, (k, d_out)), rng.uniform(-1, 1, d_out),
                 names, outs).rounded_to_float32()


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
K = %s
def frame(t, s, p):
    raw = bytearray(len(p) + 4)
    raw[0] = t
    raw[1] = s
    for i in range(len(p)):
        raw[2 + i] = p[i]
    c = crc16(raw, len(p) + 2)
    raw[len(p) + 2] = c & 255
    raw[len(p) + 3] = c >> 8
    out = bytearray(len(raw) + 6)
    n = encode(out, raw, len(raw))
    # read it back the way the board does: scan in chunks, decode, check
    rx = bytearray(len(raw) + 80)
    ch = bytearray(7)
    pos = 0
    got = -1
    for a in range(0, n, 7):
        m = min(7, n - a)
        for i in range(m):
            ch[i] = out[a + i]
        st = 0
        while st < m:
            r = scan(rx, pos, ch, st | (m << 8))
            if not r & 0x800:
                pos = r & 0x7FF
                break
            st = r >> 12
            k = r & 0x7FF
            pos = 0
            if k:
                d = decode(rx, k)
                ok = crc16(rx, d - 2) == rx[d - 2] | (rx[d - 1] << 8)
                got = d if ok else -2
    cp = bytearray(8)
    copy(cp, 3, raw, 0 | (4 << 16))
    print(K, n, end=' ')
    for i in range(n):
        print('%%02x' %% out[i], end='')
    print('', got, end=' ')
    for v in cp:
        print('%%02x' %% v, end='')
    print()
"""


def kernel_calls():
    return "\n".join("frame(%d, %d, %s)" % v for v in VECTOR_SRC)


def check_kernel_output(out, tag):
    """Each line: tag, wire length, wire hex, decoded length, copy result: as the host says."""
    rows = [ln.split() for ln in out.strip().splitlines() if ln.startswith(tag)]
    assert len(rows) == len(VECTORS), out
    for (t, s, p), row in zip(VECTORS, rows):
        wire = P.build_frame(t, s, p)
        assert int(row[1]) == len(wire) and row[2] == wire.hex(), (t, s)
        assert int(row[3]) == len(p) + 4
        raw = P.cobs_decode(wire[1:-1])
        assert row[4] == (b"\x00" * 3 + raw[0:4] + b"\x00").hex()


def test_plain_kernels_in_current_micropython():
    files = {"fwcobs.py": (firmware_dir() / "fwcobs.py").read_bytes()}
    script = ("from fwcobs import crc16, decode, encode, scan, copy\n"
              + KERNEL_SCRIPT % "'W'" + kernel_calls() + "\n")
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
    files = {"fwkl.py": (firmware_dir() / "fwkl.py").read_bytes()}
    with MicrobitSession(files) as s:
        # in small pieces: each script is compiled in the V1's ~9 KB heap
        s.run("from fwkl import crc16, decode, encode, scan, copy\n")
        s.run(KERNEL_SCRIPT % "'M'")
        out = "".join(s.run("frame(%d, %d, %s)\n" % v, timeout=60) for v in VECTOR_SRC)
        check_kernel_output(out, "M")


# The real link layer as deployed (fwkl kernels + fwlink.frame) with a small
# echo loop: frames of every size up to the 60-byte wire limit go through the
# emulated 64-byte UART buffer without loss.
ECHO_MAIN = """
while True:
    try:
        import micropython
        micropython.kbd_intr(-1)
        break
    except KeyboardInterrupt:
        pass
import fwkl as K
import fwlink as L
from microbit import uart
uart.init(115200)
micropython.kbd_intr(-1)
L.rd = uart.readinto
def wr(b, n):
    uart.write(b[:n])
L.wr = wr
L.crc16, L.decode, L.encode, L.scan = K.crc16, K.decode, K.encode, K.scan
L.st = [0] * 11
L.W = 60
L.rx = bytearray(124)
L.ch = bytearray(64)
raw = bytearray(104)
tx = bytearray(110)
while True:
    n = L.frame() - 4
    t = L.rx[0]
    K.copy(raw, 2, L.rx, 2 | (n << 16))
    raw[0] = 0x80 | t
    raw[1] = L.rx[1]
    c = K.crc16(raw, n + 2)
    raw[n + 2] = c & 255
    raw[n + 3] = c >> 8
    wr(tx, K.encode(tx, raw, n + 4))
    if t == 5:
        micropython.kbd_intr(3)
        break
"""


def test_v1_link_layer_moves_max_size_frames_without_loss():
    from neurondyn.link import Transport
    import time
    files = deploy.firmware_files(boards.get_profile("microbit-v1"))
    files = {k: v for k, v in files.items() if k in ("fwkl.py", "fwlink.py", "fwcfg.py")}
    files["main.py"] = ECHO_MAIN.encode()
    with MicrobitVM(files=files) as vm:
        b = Board(Transport(vm.port), timeout=1.0)
        try:
            deadline = time.monotonic() + 20
            while True:                      # wait for the firmware to boot
                try:
                    b._exchange(P.STATS, b"", 0.5, "boot")
                    break
                except DeviceError:
                    if time.monotonic() > deadline:
                        b.t.ser.write(b"\r\x03")
                        raise AssertionError("V1 echo firmware did not start: %r"
                                             % b.t.ser.read(400))
            b.retransmits = 0
            rng = random.Random(1)
            for i in range(150):
                size = rng.choice([0, 1, 17, 40, 52, 53])
                payload = bytes(rng.randrange(256) for _ in range(size))
                assert len(P.build_frame(P.INFER, 0, payload)) <= 60
                try:
                    rtype, body = b._exchange(P.INFER, payload, 1.0, "echo")
                except DeviceError:
                    b.t.ser.write(b"\r\x03")     # what does the board say?
                    raise AssertionError("frame %d (%d bytes) unanswered; board: %r"
                                         % (i, size, b.t.ser.read(400)))
                assert (rtype, body) == (P.INFER | P.REPLY, payload)
            # stop-and-wait keeps every frame inside the UART buffer: nothing lost
            assert b.retransmits == 0 and b.naks == 0
            b._exchange(P.REPL, b"", 1.0, "repl")
        finally:
            b.close()
