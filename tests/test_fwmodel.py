"""The board's model code on the plain path (firmware/fwplain.py; the model
store fwslot.py, fwload.py, fwsave.py) under CPython.

fwplain is what every board but the micro:bit V1 runs (its Thumb kernels in
fwk.bin are the same contracts: tests/test_fwmodel_board.py): the .ndm
parser (load), the forward pass (infer), INFER over a whole message (inf),
CRC-32 and install. Here: parity with the host's ``Model.predict``, every
kind of bad model refused (and a refused upload leaves the served model
alone), bad inputs per sample, and the store's atomicity (a power cut at any
byte of a save leaves the old or the new model).
"""
import os
import struct
import sys
import types
import zlib
from array import array

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurondyn import ndm
from neurondyn.model import Model
from neurondyn.paths import firmware_dir
from neurondyn.protocol import E_BAD_INPUT, E_BAD_MODEL

sys.path.insert(0, str(firmware_dir()))
import fwplain  # noqa: E402


def random_model(rng, d_in, d_out, k, nnz=(1, 4), signed=False):
    w = np.zeros((k, d_in))
    for a in range(k):
        idx = rng.choice(d_in, min(d_in, int(rng.integers(nnz[0], nnz[1] + 1))), replace=False)
        w[a, idx] = rng.choice([-2, -1, 1, 2], idx.size)
    off = rng.uniform(-2, 0, d_in) if signed else np.zeros(d_in)
    scale = rng.uniform(0.5, 2, d_in) * (rng.choice([-1, 1], d_in) if signed else 1)
    return Model(off, scale, w, rng.normal(0, 1, k), rng.normal(0, 1, (k, d_out)),
                 rng.normal(0, 1, d_out)).rounded_to_float32()


def valid_inputs(model, rng, n):
    x = rng.uniform(0.3, 3, (n, model.d_in))          # mapped inputs, positive
    raw = x / model.scale + model.offset
    return np.asarray(raw, np.float32).astype(np.float64)


def load(blob):
    """A fwplain.Model loaded from ``blob`` (as install does: the CRC trailer apart)."""
    fm = fwplain.Model()
    assert fwplain.load(fm, blob, len(blob) - 4) == 0
    return fm


def board_predict(fm, raw):
    y = array("f", [0.0] * fm.d_out)
    out, codes = [], []
    for row in raw:
        codes.append(fwplain.infer(fm, array("f", row), y))
        out.append(list(y))
    return np.array(out), codes


def assert_parity(host, dev):
    tol = 1e-4 * (np.abs(host) + np.sqrt(np.mean(host ** 2, axis=1, keepdims=True)))
    assert np.all(np.abs(dev - host) <= tol), np.max(np.abs(dev - host) / tol)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 4), st.integers(0, 6), st.booleans(),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_plain_forward_matches_host(d_in, d_out, k, signed, names, seed):
    rng = np.random.default_rng(seed)
    m = random_model(rng, d_in, d_out, k, signed=signed)
    blob = ndm.dumps(m, names=names)
    fm = load(blob)
    assert (fm.d_in, fm.d_out, fm.k, fm.crc) == (d_in, d_out, k, ndm.model_hash(blob))
    raw = valid_inputs(m, rng, 20)
    dev, codes = board_predict(fm, raw)
    assert codes == [0] * 20
    assert_parity(m.predict(raw), dev)


def test_load_accepts_bytes_and_bytearray():
    m = random_model(np.random.default_rng(1), 30, 12, 6, nnz=(2, 4))
    blob = ndm.dumps(m)
    for buf in (blob, bytearray(blob)):
        assert fwplain.load(fwplain.Model(), buf, len(buf) - 4) == 0


def crc(buf, n):
    s = array("I", [0])
    fwplain.crc32(buf, n, s)
    return s[0]


def test_crc32_matches_zlib_and_continues():
    data = bytearray(os.urandom(300))
    assert crc(data, 300) == zlib.crc32(data)
    assert crc(data, 17) == zlib.crc32(data[:17])
    assert crc(data, 0) == 0
    s = array("I", [0])
    fwplain.crc32(data, 100, s)
    fwplain.crc32(data[100:], 200, s)
    assert s[0] == zlib.crc32(data)
    whole = bytearray(data + struct.pack("<I", zlib.crc32(data)))
    assert crc(whole, len(whole)) == 0x2144DF1C     # the residue fwslot checks


def _recrc(body):
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def _bad_variants(blob, d_in):
    body = bytearray(blob[:-4])
    atom0 = 10 + 8 * d_in
    yield "truncated", blob[:-1]
    yield "empty", b""
    yield "short", blob[:12]
    yield "bad magic", _recrc(b"NDYX" + body[4:])
    yield "version 2", _recrc(body[:4] + b"\x02" + body[5:])
    yield "not quantized", _recrc(body[:5] + bytes([body[5] & ~1]) + body[6:])
    yield "unknown flag", _recrc(body[:5] + bytes([body[5] | 8]) + body[6:])
    yield "reserved", _recrc(body[:9] + b"\x01" + body[10:])
    yield "d_in 0", _recrc(body[:6] + b"\x00" + body[7:])
    yield "d_out 0", _recrc(body[:7] + b"\x00" + body[8:])
    yield "K+1", _recrc(body[:8] + bytes([body[8] + 1]) + body[9:])
    yield "trailing byte", _recrc(body + b"\x00")
    yield "nnz > d_in", _recrc(body[:atom0] + bytes([d_in + 1]) + body[atom0 + 1:])
    yield "index out of range", _recrc(body[:atom0 + 1] + bytes([d_in]) + body[atom0 + 2:])
    for e in (0, 3, 0x7F, 0xFD):
        yield "exponent %d" % e, _recrc(body[:atom0 + 2] + bytes([e]) + body[atom0 + 3:])
    nan = struct.pack("<f", float("nan"))
    inf = struct.pack("<f", float("inf"))
    yield "NaN offset", _recrc(body[:10] + nan + body[14:])
    yield "inf scale", _recrc(body[:14] + inf + body[18:])
    yield "zero scale", _recrc(body[:14] + struct.pack("<f", 0.0) + body[18:])
    yield "NaN bias", _recrc(body[:-4] + nan) if not blob[5] & 2 else _recrc(body)
    for i in range(0, len(blob), 7):
        flipped = bytearray(blob)
        flipped[i] ^= 0x10
        yield "flip byte %d" % i, bytes(flipped)


def board(R=250):
    """The parts of fwd that install touches: the engine state S, the reply limit."""
    return types.SimpleNamespace(S=[0] * 40, R=R, m=None)


def test_bad_models_are_refused_and_leave_the_served_one():
    rng = np.random.default_rng(2)
    m = random_model(rng, 5, 2, 3, nnz=(2, 2))
    blob = ndm.dumps(m, names=False)
    me = board()
    assert fwplain.install(me, bytearray(blob)) == 0
    served = (me.m, list(me.S))
    assert me.S[14] is me.m[0] and me.S[32] == blob and me.S[33] == len(blob)
    n = 0
    for what, bad in _bad_variants(blob, m.d_in):
        if bad == _recrc(blob[:-4]):
            continue
        fm = fwplain.Model()
        assert fwplain.load(fm, bad, len(bad) - 4) == E_BAD_MODEL, what
        assert not hasattr(fm, "m") and not hasattr(fm, "d_in"), what     # nothing half-set
        assert fwplain.install(me, bytearray(bad)) == E_BAD_MODEL, what
        assert (me.m, list(me.S)) == served, what
        n += 1
    assert n > 30


def test_unsorted_indices_refused():
    m = Model(np.zeros(3), np.ones(3), [[1, 0, -1]], [0.0], [[1.0]], [0.0])
    body = bytearray(ndm.dumps(m, names=False)[:-4])
    atom0 = 10 + 8 * 3
    assert body[atom0:atom0 + 5] == bytes([2, 0, 1, 2, 0xFF])
    body[atom0 + 1:atom0 + 5] = bytes([2, 0xFF, 0, 1])     # index 2 before index 0
    bad = _recrc(body)
    assert fwplain.load(fwplain.Model(), bad, len(bad) - 4) == E_BAD_MODEL


def test_non_quantized_model_refused():
    m = Model(np.zeros(2), np.ones(2), [[0.5, 1.0]], [0.0], [[1.0]], [0.0], quantized=False)
    blob = ndm.dumps(m)
    assert fwplain.load(fwplain.Model(), blob, len(blob) - 4) == E_BAD_MODEL


def test_bad_inputs_leave_outputs_alone():
    rng = np.random.default_rng(3)
    m = random_model(rng, 4, 3, 3, signed=True)
    fm = load(ndm.dumps(m))
    good = valid_inputs(m, rng, 1)[0]
    y = array("f", [7.0, 8.0, 9.0])
    for j in range(4):
        zero = good.copy()
        zero[j] = m.offset[j]                                  # maps to exactly 0
        below = good.copy()
        below[j] = m.offset[j] - 1.0 / m.scale[j]             # maps to -1
        for bad in (zero, below):
            assert fwplain.infer(fm, array("f", bad), y) == E_BAD_INPUT
        for v in (float("nan"), float("inf"), float("-inf")):
            row = good.copy()
            row[j] = v
            assert fwplain.infer(fm, array("f", row), y) == E_BAD_INPUT
        assert list(y) == [7.0, 8.0, 9.0]
    assert fwplain.infer(fm, array("f", good), y) == 0
    assert_parity(m.predict(good[None]), np.array([list(y)]))
    host_valid = m.valid_rows(np.array([zero, below]))
    assert not host_valid.any()


# -- the model store: two slots, gen u8 + length u16 + .ndm -----------------

class Store:
    """The board's model store in the current folder: boot() is what fwload
    finds at a boot (the .ndm or None; it remembers the slot and gen for
    fwsave), save() what a commit writes (fwsave)."""

    def __init__(self):
        self.me = types.SimpleNamespace(A=0, lazy=lambda n: __import__(n).do)

    def boot(self):
        import fwload
        b = fwload.do(self.me)
        return None if b is None else bytes(b)

    def save(self, blob):
        import fwsave
        fwsave.do(self.me, bytearray(blob))


def fresh_boot():
    return Store().boot()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    st = Store()
    assert st.boot() is None
    return st


def _blobs():
    rng = np.random.default_rng(4)
    return [ndm.dumps(random_model(rng, 3, 1, 2), names=False) for _ in range(3)]


def slot_holding(tmp_path, blob):
    (name,) = [n for n in os.listdir(tmp_path) if (tmp_path / n).read_bytes()[3:] == blob]
    return tmp_path / name


def test_store_roundtrip_and_alternation(store, tmp_path):
    a, b, c = _blobs()
    for blob in (a, b, c, a):
        store.save(blob)
        assert fresh_boot() == blob
    assert sorted(os.listdir(tmp_path)) == ["ndm_a", "ndm_b"]
    data = slot_holding(tmp_path, a).read_bytes()
    assert data[1] | data[2] << 8 == len(a) and len(data) == 3 + len(a)    # gen, length, .ndm


def test_store_newest_wins_across_the_gen_wrap(store, tmp_path):
    a, b, _ = _blobs()
    for i in range(300):                         # gen u8 wraps past 255
        store.save(a if i % 2 else b)
        if i % 23 == 0 or i > 250:
            assert fresh_boot() == (a if i % 2 else b), i
            store.boot()                          # and the board restarts now and then


def test_store_torn_write_at_every_offset(store, tmp_path):
    """A power cut after any number of bytes of a save leaves the old or the new model."""
    old, new, _ = _blobs()
    store.save(old)
    store.save(old)             # both slots hold old: the next save overwrites one
    store.save(new)
    slot = slot_holding(tmp_path, new)
    full = slot.read_bytes()
    assert len(full) == 3 + len(new)
    for cut in range(len(full) + 1):
        slot.write_bytes(full[:cut])
        assert fresh_boot() == (new if cut == len(full) else old), cut
    # after a cut the board boots the old model and its next save is whole again
    slot.write_bytes(full[:40])
    st = Store()
    assert st.boot() == old
    st.save(new)
    assert fresh_boot() == new


def test_store_never_overwrites_the_only_good_slot(store, tmp_path):
    old, new, newer = _blobs()
    store.save(old)
    store.save(new)
    newest = slot_holding(tmp_path, new)
    other = slot_holding(tmp_path, old)
    newest.write_bytes(newest.read_bytes()[:-3])     # newest slot torn: old is the good one
    st = Store()
    assert st.boot() == old
    kept = other.read_bytes()
    st.save(newer)                                   # must go into the torn slot
    assert other.read_bytes() == kept
    assert fresh_boot() == newer


@pytest.mark.parametrize("damage", ["longer", "shorter", "gen only", "crc"])
def test_store_rejects_a_slot_that_is_not_whole(store, tmp_path, damage):
    old, new, _ = _blobs()
    store.save(old)
    store.save(new)
    slot = slot_holding(tmp_path, new)
    data = bytearray(slot.read_bytes())
    n = data[1] | data[2] << 8
    if damage == "longer":                           # header claims one byte more
        n += 1
    elif damage == "shorter":
        n -= 1
    elif damage == "gen only":
        data = data[:1]
    else:
        data[10] ^= 0x01
    if damage in ("longer", "shorter"):
        data[1], data[2] = n & 255, n >> 8
    slot.write_bytes(bytes(data))
    assert fresh_boot() == old


def test_image_builder_lays_the_store_out_as_the_board_does(tmp_path, monkeypatch):
    from neurondyn import boards, deploy
    _, new, _ = _blobs()
    files = deploy.model_store_files(new, boards.get_profile("esp32"))
    monkeypatch.chdir(tmp_path)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert set(files) <= {"ndm_a", "ndm_b"} and fresh_boot() == new
    assert deploy.store_slot_names(boards.get_profile("esp32")) == ["ndm_a", "ndm_b"]


# -- INFER over a message (fwplain.inf, the twin of firmware/asm/fwfinf.py) ------

def call_inf(fm, msg):
    """fwplain.inf as the engine calls it: the message at the start of the
    board's message buffer, its length in the reply buffer's first two bytes."""
    g = bytearray(1024)
    g[:len(msg)] = msg
    p = bytearray(2 + 1000)
    p[0], p[1] = len(msg) & 255, len(msg) >> 8
    return fwplain.inf(fm, g, p), p


def infer_message(fm, rows, fmt):
    from neurondyn import protocol as P
    return call_inf(fm, P.infer_payload(rows, fmt))


def test_infer_message_matches_host_float32_and_int16():
    from neurondyn import protocol as P
    rng = np.random.default_rng(8)
    m = random_model(rng, 6, 3, 4, signed=True)
    fm = load(ndm.dumps(m))
    rows = valid_inputs(m, rng, 5)
    rows[1, 2] = m.offset[2] - 1 / m.scale[2]        # maps to -1: this sample refused
    rows[3, 0] = np.nan
    e, p = infer_message(fm, rows, P.FMT_F32)
    assert e == 5 | (5 * 13) << 8                    # 5 records of status + 3 float32
    pred, status = P.parse_infer(bytes(p[2:2 + 5 * 13]), 5, 3)
    assert list(status) == [0, E_BAD_INPUT, 0, E_BAD_INPUT, 0]
    ok = status == 0
    assert_parity(m.predict(rows[ok]), pred[ok])
    # int16: QSCALE's pairs; -32768 is a missing value
    off, sc = P.choose_int16_scale(rows)
    fm.q = array("f", [v for pair in zip(off, sc) for v in pair])
    q = P.quantize_int16(rows, off, sc)
    assert q[3, 0] == P.I16_MISSING
    e, p = infer_message(fm, q, P.FMT_I16)
    assert e == 5 | (5 * 13) << 8
    pred16, status16 = P.parse_infer(bytes(p[2:2 + 5 * 13]), 5, 3)
    assert list(status16) == list(status)
    deq = P.dequantize_int16(q, off, sc)
    assert_parity(m.predict(deq[ok]), pred16[ok])


def test_infer_message_refusals():
    from neurondyn import protocol as P
    rng = np.random.default_rng(9)
    m = random_model(rng, 4, 2, 2)
    fm = load(ndm.dumps(m))
    rows = valid_inputs(m, rng, 3)
    q = P.quantize_int16(rows, *P.choose_int16_scale(rows))
    assert infer_message(fm, q, P.FMT_I16)[0] == -9            # int16 before QSCALE
    g = bytearray(P.infer_payload(rows, P.FMT_F32))
    for bad in (g[:-1], bytearray([2]) + g[1:], bytearray()):  # torn sample, fmt 2, empty
        assert call_inf(fm, bad)[0] == -2, bad[:4]
    fm.R = 2 * (1 + 4 * 2)                                     # the reply holds two samples
    assert infer_message(fm, rows, P.FMT_F32)[0] == -2
    assert infer_message(fm, rows[:2], P.FMT_F32)[0] == 2 | 18 << 8
    assert infer_message(fm, rows[:0], P.FMT_F32)[0] == 0      # no sample: an empty reply


# -- the device benchmark's host-side pieces -----------------------------------

def test_mlp_baseline_firmware_matches_folded_sklearn_weights(tmp_path, monkeypatch):
    from neurondyn.bench import device
    import fwmlp
    rng = np.random.default_rng(5)
    m = device.make_model(4, 2, 2, (1, 2), rng)
    xtr, ytr, xte, yte = device.make_task(m, rng, n_train=300, n_test=50)
    mlp, _ = device.train_mlp(xtr, ytr, xte, yte, target=0.0, quick=True)
    (tmp_path / "m.bin").write_bytes(device.mlp_blob(mlp["weights"]))
    monkeypatch.chdir(tmp_path)
    net = fwmlp.MLP()
    net.load("m.bin")
    y = array("f", [0.0, 0.0])
    for row in xte[:10]:
        net.infer(array("f", row), y)
        host = device.mlp_forward(mlp["weights"], row[None])[0]
        assert np.allclose(list(y), host, rtol=1e-4, atol=1e-4 * np.abs(host).max())


def test_link_bound_counts_frames_of_the_protocol():
    from neurondyn.bench import device
    from neurondyn.protocol import wire_size
    per_s, = [device.link_bound(30, 12, False)[1]]
    # 2 samples a message: 241-byte request in 5 fragments (4 ACKs back), 98-byte reply
    wire = 4 * wire_size(53) + wire_size(241 - 4 * 53) + 4 * wire_size(0) + wire_size(98)
    assert device.link_bound(30, 12, False)[0] == wire / 2
    assert per_s == 11520.0 * 2 / wire
    assert device.link_bound(30, 12, True)[1] > per_s       # int16 halves the request bytes
