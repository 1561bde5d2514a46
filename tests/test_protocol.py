"""The serial protocol (docs/protocol.md) under CPython.

* host ``neurondyn.protocol`` and the firmware's frame kernels (``fwcobs``: the
  plain-Python twins of the Thumb kernels in fwk.bin, which tests/test_link_e2e.py
  checks against the same host bytes inside MicroPython 1.9.2) produce
  identical bytes, both ways: ``frm`` (CRC-16 + COBS) builds the host's frame,
  ``scan`` + ``chk`` read it back;
* corrupted, truncated and overlong frames are rejected;
* the frame engine (``fwcobs.eng``) keeps a frame that arrives in pieces: the
  same bytes read in chunks of any size get the same replies;
* the real serving loop (``fwd.run`` on the plain path: fwkern, fwboot, fwbufs,
  fwload, the engine, the msg kernel ``fwplain.msg``, ``fwq`` and its handlers,
  the model store in the current folder), run in a thread under CPython behind
  a real pty, served through the real ``neurondyn.link.Board`` (fragments,
  duplicates, NAKs, bad input, upload, int16).
"""
import os
import struct
import sys
import threading
import tty

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurondyn import ndm, protocol as P
from neurondyn.errors import DeviceError
from neurondyn.link import Board, BoardError
from neurondyn.model import Model

import fwhost  # noqa: E402  (tests/: the firmware's plain path under CPython)
import fwcobs  # noqa: E402  (firmware, plain-Python kernels)


def fw_frame(typ, seq, payload):
    """Build a wire frame with the firmware's kernel frm, as the board does."""
    raw = bytearray([typ, seq]) + bytearray(payload) + bytearray(2)
    tx = bytearray(len(raw) + len(raw) // 254 + 4)
    n = fwcobs.frm(tx, raw, len(raw) - 2)
    return bytes(tx[:n])


def fw_read(wire, step=7):
    """Feed wire bytes through the firmware's scan + chk in ``step``-byte reads;
    a list of the raw frames (None for one chk refused)."""
    rx = bytearray(len(wire) + 8)
    frames, pos = [], 0
    for i in range(0, len(wire), step):                 # arbitrary read chunks
        chunk = bytearray(wire[i:i + step])
        s = 0
        while s < len(chunk):
            r = fwcobs.scan(rx, chunk, pos | s << 11 | len(chunk) << 19)
            if not r & 0x800:
                pos = r & 0x7FF
                break
            s, n, pos = r >> 12, r & 0x7FF, 0
            if n:
                m = fwcobs.chk(rx, n)
                frames.append(bytes(rx[:m]) if m >= 4 else None)
    return frames


payloads = st.binary(min_size=0, max_size=250)


def test_crc_check_value():
    assert P.crc16(b"123456789") == 0x29B1
    assert fwcobs.crc16(bytearray(b"123456789"), 9) == 0x29B1


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), payloads)
def test_host_and_firmware_frames_are_identical(typ, seq, payload):
    wire = P.build_frame(typ, seq, payload)
    assert fw_frame(typ, seq, payload) == wire
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    assert len(wire) <= P.wire_size(len(payload))
    (raw,) = fw_read(wire)
    assert raw[0] == typ and raw[1] == seq and raw[2:-2] == payload
    frames = P.FrameDecoder().feed(wire)
    assert frames == [(typ, seq, payload)]


@settings(max_examples=200, deadline=None)
@given(payloads)
def test_cobs_round_trip_both_ways(data):
    enc = P.cobs_encode(data)
    assert 0 not in enc
    buf = bytearray(enc)
    assert bytes(buf[:fwcobs.decode(buf, len(buf))]) == data
    assert P.cobs_decode(enc) == data


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), payloads, st.data())
def test_any_corruption_is_rejected(seq, payload, data):
    wire = bytearray(P.build_frame(P.INFER, seq, payload))
    i = data.draw(st.integers(1, len(wire) - 2))
    wire[i] ^= data.draw(st.integers(1, 255))
    host = P.FrameDecoder()
    got = host.feed(bytes(wire))
    # a corrupted byte may split the frame at a new 0x00; nothing valid survives
    assert got == [] and host.bad >= 1
    assert all(f is None for f in fw_read(bytes(wire)))


@settings(max_examples=100, deadline=None)
@given(payloads, st.data())
def test_truncated_frames_are_rejected(payload, data):
    wire = P.build_frame(P.UP_DATA, 7, payload)
    cut = data.draw(st.integers(2, len(wire) - 2))
    broken = wire[:cut] + b"\x00"
    assert P.FrameDecoder().feed(broken) == []
    assert all(f is None for f in fw_read(broken))


def test_decoder_resynchronises_after_garbage():
    good = P.build_frame(P.HELLO, 3, b"\x01")
    dec = P.FrameDecoder()
    frames = dec.feed(b"MicroPython v1.9.2\r\n>>> " + good + good[:5])
    assert frames == [(P.HELLO, 3, b"\x01")] and dec.bad == 1
    assert dec.feed(good[5:]) == [(P.HELLO, 3, b"\x01")]


def test_int16_quantisation_round_trip():
    rng = np.random.default_rng(0)
    raw = rng.uniform(-5, 40, size=(50, 3))
    raw[4, 1] = np.nan
    off, sc = P.choose_int16_scale(raw)
    q = P.quantize_int16(raw, off, sc)
    assert q[4, 1] == P.I16_MISSING and np.all(np.abs(q[np.isfinite(raw)]) <= 32767)
    back = P.dequantize_int16(q, off, sc)
    ok = np.isfinite(raw)
    assert np.all(np.abs(back[ok] - raw[ok]) <= sc.max() * 0.51 + 1e-5 * np.abs(raw[ok]))
    assert np.isnan(back[4, 1])


@pytest.mark.parametrize("free", [60_000, 100_000, 130_000, 200_000, 1_000_000, 60_000_000])
def test_boot_leaves_every_heap_a_collector(free, monkeypatch):
    """fwboot on a stdin board (ESP32, RP2040, pyboard, mpy-wasm: MicroPython's
    names in place) may turn MicroPython's automatic collector off (mpy-wasm:
    one deep in a call traps its VM) only if fwd then collects at its loop
    top: a board whose heap fills with garbage must never be left with
    neither (gc.disable() means no collection even when an allocation fails:
    MemoryError)."""
    import gc
    import time
    import types
    calls = []
    monkeypatch.setitem(sys.modules, "micropython", types.SimpleNamespace(kbd_intr=lambda c: None))
    monkeypatch.setattr(time, "ticks_us", lambda: 0, raising=False)
    monkeypatch.setattr(time, "ticks_diff", lambda a, b: a - b, raising=False)
    monkeypatch.setattr(gc, "mem_free", lambda: free, raising=False)
    monkeypatch.setattr(gc, "disable", lambda: calls.append("disable"))
    monkeypatch.delitem(sys.modules, "fwcfg", raising=False)
    import fwboot
    me = types.SimpleNamespace(lazy=lambda n: __import__(n).do, out=None)
    r = fwboot.do(me, lambda b: 0, lambda b, n: None)
    lo = r[6]
    assert not calls or 0 < lo < free, (calls, lo)
    if calls:
        assert free - lo <= max(free // 2, 131072)      # and well before the heap is full


# -- the firmware dispatcher under CPython, behind a real pty ----------------
def _model(d_in=5, d_out=3, seed=0):
    rng = np.random.default_rng(seed)
    w = np.zeros((3, d_in))
    for a in range(3):
        js = rng.choice(d_in, size=2, replace=False)
        w[a, js] = rng.choice([-2, -1, 1, 2], size=2)
    return Model(np.zeros(d_in), np.ones(d_in), w, rng.uniform(-1, 1, 3),
                 rng.uniform(-2, 2, (3, d_out)), rng.uniform(-1, 1, d_out)).rounded_to_float32()


class CpythonBoard:
    """The real firmware (fwd.run, plain path) in a thread on a pty; its model
    store is the current folder."""

    def __init__(self, ndm_bytes=None, drop=None):
        if ndm_bytes:
            fwhost.store(ndm_bytes)
        master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self.master, self.slave = master, slave
        self.drop = drop or (lambda data: data)
        self.error = None

        def rd(b):
            try:
                data = os.read(master, len(b))
            except OSError:          # the host side closed: power off
                raise SystemExit
            b[:len(data)] = data
            return len(data)

        def wr(b, n):
            os.write(master, self.drop(bytes(b[:n])))

        def serve():
            try:
                fwhost.serve(rd, wr)     # loads the stored model, then serves
            except SystemExit:
                pass
            except BaseException as exc:        # the test fails on it (stop)
                self.error = exc
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self):
        os.close(self.slave)          # the board's read then fails and its thread ends
        self.thread.join(5)
        os.close(self.master)
        assert not self.thread.is_alive(), "the firmware did not stop"
        assert self.error is None, "the firmware raised %r" % self.error


@pytest.fixture
def cboard(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)       # the board's flash: ndm_a, ndm_b
    boards = []

    def make(*args, **kw):
        b = CpythonBoard(*args, **kw)
        boards.append(b)
        return b
    yield make
    for b in boards:
        b.stop()


def test_engine_reassembles_frames_read_in_any_pieces(tmp_path, monkeypatch):
    """The frame engine keeps a partial frame (and the rest of a read) across
    reads: the micro:bit-style line (64-byte reads) gets the same replies
    whatever size the pieces arrive in."""
    monkeypatch.chdir(tmp_path)
    m = _model()
    fwhost.store(ndm.dumps(m))
    rows = np.random.default_rng(7).uniform(0.5, 3, (2, 5))
    msg = P.infer_payload(rows, P.FMT_F32)                   # 41 bytes: two fragments
    bad = bytearray(P.build_frame(P.HELLO, 9, b"\x01"))
    bad[4] ^= 0x20
    wire = (b"MicroPython v1.9.2\r\n>>> " + P.build_frame(P.HELLO, 1, b"\x01")
            + P.build_frame(P.INFER | P.MORE, 2, msg[:30]) + P.build_frame(P.INFER, 3, msg[30:])
            + P.build_frame(P.INFER, 3, msg[30:])              # a retransmission
            + bytes(bad) + b"\x00" + b"\x11" * 90 + b"\x00"    # bad CRC, overlong
            + P.build_frame(P.STATS, 4) + P.build_frame(P.REPL, 5))
    seen = {}
    for step in (1, 2, 3, 7, 13, 60, 64):
        pos, out = [0], bytearray()

        def rd(buf):
            n = min(len(buf), step, len(wire) - pos[0])
            assert n > 0, "the firmware read past the REPL request"
            buf[:n] = wire[pos[0]:pos[0] + n]
            pos[0] += n
            return n

        fwhost.serve(rd, lambda b, n: out.extend(bytes(b[:n])), uart=True)
        got = P.FrameDecoder().feed(bytes(out))
        stats = P.parse_stats(got[-2][2])
        seen[step] = [f for f in got if f[0] != P.STATS | P.REPLY] + \
            [tuple(stats[k] for k in ("frames_ok", "bad_crc", "bad_frame", "errors", "dups",
                                      "samples"))]
    first = seen[1]
    assert all(v == first for v in seen.values())
    types_ = [(t, s) for t, s, _ in first[:-1]]
    # the banner is a bad frame (NAK), then every frame is answered in order
    assert types_ == [(P.ERROR, 0), (P.HELLO | P.REPLY, 1), (P.ACK, 2), (P.INFER | P.REPLY, 3),
                      (P.INFER | P.REPLY, 3), (P.ERROR, 0), (P.ERROR, 0), (P.REPL | P.REPLY, 5)]
    assert [f[2][0] for f in first[:-1] if f[0] == P.ERROR] == [P.E_BAD_LEN, P.E_BAD_CRC,
                                                                 P.E_BAD_LEN]
    assert first[3] == first[4]                              # the cached reply, byte for byte
    pred, status = P.parse_infer(first[3][2], 2, 3)
    assert not status.any() and np.allclose(pred, m.predict(rows), rtol=1e-5, atol=1e-6)
    assert P.parse_hello(first[1][2])["max_payload"] == 53      # the micro:bit's limits
    # frames_ok (HELLO, 2 INFER, its copy, STATS), bad_crc, bad_frame, errors, dups, samples
    assert first[-1] == (5, 1, 2, 0, 1, 2)


def test_dispatcher_serves_parity_bad_input_int16_and_upload(cboard):
    m = _model()
    board = cboard(ndm.dumps(m))
    with Board.open(board.port, timeout=2.0) as b:
        info = b.hello()
        assert (info["d_in"], info["d_out"], info["k"]) == (5, 3, 3)
        assert info["model_hash"] == ndm.model_hash(ndm.dumps(m))
        rows = np.random.default_rng(1).uniform(0.5, 3, (23, 5))
        rows[2, 1] = -0.5
        rows[7, 3] = np.nan
        preds, status = b.infer(rows)
        assert list(np.flatnonzero(status)) == [2, 7] and set(status[[2, 7]]) == {P.E_BAD_INPUT}
        ok = status == 0
        host = m.predict(rows[ok])
        tol = 1e-4 * (np.abs(host) + np.sqrt(np.mean(host ** 2)))
        assert np.all(np.abs(preds[ok] - host) <= tol)
        # int16: the board sees the dequantised values
        p16, s16 = b.infer(rows, int16=True)
        assert list(np.flatnonzero(s16)) == [2, 7]
        deq = P.dequantize_int16(P.quantize_int16(rows, *b._qscale), *b._qscale)
        host16 = m.predict(deq[ok])
        assert np.all(np.abs(p16[ok] - host16) <= 1e-4 * (np.abs(host16) + 1))
        # upload a second model with another shape; it serves at once
        m2 = _model(d_in=7, d_out=2, seed=3)
        info = b.upload(ndm.dumps(m2))
        assert (info["d_in"], info["d_out"]) == (7, 2)
        rows2 = np.random.default_rng(2).uniform(0.5, 3, (9, 7))
        p2, s2 = b.infer(rows2)
        assert not s2.any() and np.allclose(p2, m2.predict(rows2), rtol=1e-4, atol=1e-5)
        # PULL hands the served .ndm back in pieces (total, hash, bytes from an offset)
        want, got = ndm.dumps(m2), b""
        while len(got) < len(want):
            body = b.request(P.PULL, struct.pack("<IH", len(got), 100), what="PULL")
            total, h = struct.unpack_from("<II", body)
            assert (total, h) == (len(want), ndm.model_hash(want)) and 8 < len(body) <= 108
            got += body[8:]
        assert got == want
        body = b.request(P.PULL, struct.pack("<IH", len(want), 100), what="PULL")
        assert body[8:] == b""                            # past the end: no bytes
        st = b.stats()
        assert st["samples"] == 23 * 2 + 9 and st["bad_input"] == 4 and st["dups"] == 0
        assert st["bad_crc"] == 0 and b.retransmits == 0


def test_dispatcher_refusals_keep_serving(cboard):
    board = cboard(None)
    with Board.open(board.port, timeout=2.0) as b:
        assert not b.info["model_loaded"] and b.info["model_hash"] is None
        with pytest.raises(BoardError) as exc:
            b.request(P.INFER, b"\x00" + b"\x00" * 20, what="INFER")
        assert exc.value.code == P.E_NO_MODEL
        with pytest.raises(BoardError) as exc:
            b.request(0x3E, b"", what="x")
        assert exc.value.code == P.E_UNKNOWN
        # an upload whose bytes are not a model is refused; no model is installed
        bad = bytearray(ndm.dumps(_model()))
        bad[12] ^= 0x55
        with pytest.raises(BoardError) as exc:
            b.upload(bytes(bad))
        assert exc.value.code == P.E_BAD_MODEL
        assert not b.hello()["model_loaded"]
        # out-of-order upload chunk
        b.request(P.UP_BEGIN, struct.pack("<II", 100, 0))
        with pytest.raises(BoardError) as exc:
            b.request(P.UP_DATA, struct.pack("<I", 10) + b"x")
        assert exc.value.code == P.E_BAD_STATE
        b.upload(ndm.dumps(_model()))
        assert b.hello()["model_loaded"]


def test_duplicates_are_answered_from_the_cache_not_re_executed(cboard):
    board = cboard(ndm.dumps(_model()))
    with Board.open(board.port, timeout=2.0) as b:
        before = b.stats()
        frame = P.build_frame(P.UP_BEGIN, 200, struct.pack("<II", 10, 0))
        replies = []
        for _ in range(3):                       # the same seq three times
            b.t.write(frame)
            import time
            deadline = time.monotonic() + 2
            got = []
            while not got and time.monotonic() < deadline:
                got = b.t.read_frames(deadline)
            replies += got
        assert [r[:2] for r in replies] == [(P.UP_BEGIN | P.REPLY, 200)] * 3
        after = b.stats()
        assert after["dups"] - before["dups"] == 2


def test_lost_replies_are_recovered_by_retransmission(cboard):
    state = {"n": 0}

    def drop_every_third(data):
        state["n"] += 1
        return b"" if state["n"] % 3 == 0 else data

    m = _model()
    board = cboard(ndm.dumps(m), drop=drop_every_third)
    with Board.open(board.port, timeout=0.3) as b:
        rows = np.random.default_rng(5).uniform(0.5, 3, (30, 5))
        preds, status = b.infer(rows)
        assert not status.any()
        assert np.allclose(preds, m.predict(rows), rtol=1e-4, atol=1e-5)
        assert b.retransmits > 0
        assert b.stats()["dups"] >= 1        # the board did not run a request twice


def test_corrupted_request_gets_a_nak_and_is_resent(cboard):
    board = cboard(ndm.dumps(_model()))
    with Board.open(board.port, timeout=2.0) as b:
        real_write = b.t.write
        state = {"n": 0}

        def corrupt_first(data):
            state["n"] += 1
            if state["n"] == 1:
                data = bytearray(data)
                data[3] ^= 0x40
            real_write(bytes(data))
        b.t.write = corrupt_first
        b.stats()
        assert b.naks == 1 and b.retransmits == 1
        assert b.stats()["bad_crc"] + b.stats()["bad_frame"] >= 1


def test_a_session_that_died_mid_message_does_not_block_the_next_handshake(cboard):
    """HELLO resets the session state, a half-received message included
    (docs/protocol.md 4): the next session shakes hands and serves."""
    m = _model()
    board = cboard(ndm.dumps(m))
    with Board.open(board.port, timeout=2.0) as b:
        rows = np.random.default_rng(3).uniform(0.5, 3, (4, 5))
        msg = P.infer_payload(rows, P.FMT_F32)
        rtype, _ = b._exchange(P.INFER | P.MORE, msg[:40], 2.0, "INFER fragment")
        assert rtype == P.ACK                      # ... and then the host went away
    with Board.open(board.port, timeout=2.0) as b:
        assert b.info["model_loaded"]
        preds, status = b.infer(rows)
        assert not status.any() and np.allclose(preds, m.predict(rows), rtol=1e-4, atol=1e-5)


def test_wrong_protocol_version_is_refused_with_a_clear_message(cboard, monkeypatch):
    board = cboard(None)
    monkeypatch.setattr(P, "PROTO_VERSION", 2)
    with pytest.raises(DeviceError, match="speaks protocol 1, this ndyn speaks 2"):
        Board.open(board.port, timeout=2.0)


def test_silent_port_is_a_device_error(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        import neurondyn.link as link
        old = link.ATTEMPTS
        link.ATTEMPTS = 2
        try:
            with pytest.raises(DeviceError, match="no ndyn firmware answers"):
                Board.open(os.ttyname(slave), timeout=0.2)
        finally:
            link.ATTEMPTS = old
    finally:
        os.close(slave)
        os.close(master)
