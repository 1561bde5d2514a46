"""The board's model code (firmware/fwmodel.py, fwplain.py, fwstore.py) under CPython.

Under CPython there is no asm_thumb, so this is the plain path; the Thumb
kernels are checked against it inside MicroPython in test_fwmodel_board.py.
"""
import math
import os
import struct
import sys
import zlib
from array import array

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurondyn import ndm
from neurondyn.model import Model
from neurondyn.paths import firmware_dir

sys.path.insert(0, str(firmware_dir()))
import fwmodel  # noqa: E402
import fwstore  # noqa: E402


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


def board_predict(fm, raw):
    y = array("f", [0.0] * fm.d_out)
    out, codes = [], []
    for row in raw:
        codes.append(fm.infer(array("f", row), y))
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
    fm = fwmodel.Model()
    assert fm.load(blob) == 0
    assert (fm.d_in, fm.d_out, fm.k, fm.crc) == (d_in, d_out, k, ndm.model_hash(blob))
    raw = valid_inputs(m, rng, 20)
    dev, codes = board_predict(fm, raw)
    assert codes == [0] * 20
    assert_parity(m.predict(raw), dev)


def test_load_accepts_bytes_and_bytearray():
    m = random_model(np.random.default_rng(1), 30, 12, 6, nnz=(2, 4))
    blob = ndm.dumps(m)
    for buf in (blob, bytearray(blob)):
        assert fwmodel.Model().load(buf) == 0


def test_crc32_matches_zlib_and_continues():
    data = bytearray(os.urandom(300))
    assert fwmodel.crc(data, 300) == zlib.crc32(data)
    assert fwmodel.crc(data, 17) == zlib.crc32(data[:17])
    s = array("I", [0])
    fwmodel.crc(data, 100, s)
    fwmodel.crc(data[100:], 200, s)
    assert s[0] == zlib.crc32(data)
    whole = bytearray(data + struct.pack("<I", zlib.crc32(data)))
    assert fwmodel.crc(whole, len(whole)) == 0x2144DF1C     # the residue fwstore checks


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


def test_bad_models_are_refused():
    rng = np.random.default_rng(2)
    m = random_model(rng, 5, 2, 3, nnz=(2, 2))
    blob = ndm.dumps(m, names=False)
    for what, bad in _bad_variants(blob, m.d_in):
        if bad == _recrc(blob[:-4]):
            continue
        fm = fwmodel.Model()
        assert fm.load(bad) == fwmodel.E_BAD_MODEL, what
        assert fm.d_in == 0 and fm.crc is None, what


def test_unsorted_indices_refused():
    m = Model(np.zeros(3), np.ones(3), [[1, 0, -1]], [0.0], [[1.0]], [0.0])
    body = bytearray(ndm.dumps(m, names=False)[:-4])
    atom0 = 10 + 8 * 3
    assert body[atom0:atom0 + 5] == bytes([2, 0, 1, 2, 0xFF])
    body[atom0 + 1:atom0 + 5] = bytes([2, 0xFF, 0, 1])     # index 2 before index 0
    assert fwmodel.Model().load(_recrc(body)) == fwmodel.E_BAD_MODEL


def test_non_quantized_model_refused():
    m = Model(np.zeros(2), np.ones(2), [[0.5, 1.0]], [0.0], [[1.0]], [0.0], quantized=False)
    assert fwmodel.Model().load(ndm.dumps(m)) == fwmodel.E_BAD_MODEL


def test_bad_inputs_leave_outputs_alone():
    rng = np.random.default_rng(3)
    m = random_model(rng, 4, 3, 3, signed=True)
    fm = fwmodel.Model()
    assert fm.load(ndm.dumps(m)) == 0
    good = valid_inputs(m, rng, 1)[0]
    y = array("f", [7.0, 8.0, 9.0])
    for j in range(4):
        zero = good.copy()
        zero[j] = m.offset[j]                                  # maps to exactly 0
        below = good.copy()
        below[j] = m.offset[j] - 1.0 / m.scale[j]             # maps to -1
        for bad in (zero, below):
            assert fm.infer(array("f", bad), y) == fwmodel.E_BAD_INPUT
        for v in (float("nan"), float("inf"), float("-inf")):
            row = good.copy()
            row[j] = v
            assert fm.infer(array("f", row), y) == fwmodel.E_BAD_INPUT
        assert list(y) == [7.0, 8.0, 9.0]
    assert fm.infer(array("f", good), y) == 0
    assert_parity(m.predict(good[None]), np.array([list(y)]))
    host_valid = m.valid_rows(np.array([zero, below]))
    assert not host_valid.any()


# -- fwstore: the atomic slot -------------------------------------------------

@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(fwstore, "DIR", str(tmp_path) + os.sep)
    return tmp_path


def _blobs():
    rng = np.random.default_rng(4)
    return [ndm.dumps(random_model(rng, 3, 1, 2), names=False) for _ in range(3)]


def test_store_roundtrip_and_alternation(store):
    a, b, c = _blobs()
    assert fwstore.load() is None
    for blob in (a, b, c, a):
        fwstore.save(blob)
        assert bytes(fwstore.load()) == blob
    assert sorted(os.listdir(store)) == ["ndm_a", "ndm_b"]


def test_store_torn_write_at_every_offset(store):
    """A power cut after any number of bytes of a save leaves the old or the new model."""
    old, new, _ = _blobs()
    fwstore.save(old)
    fwstore.save(old)             # both slots hold old: the next save overwrites one
    total = 8 + len(new)
    fwstore.save(new)
    slot = [n for n in os.listdir(store)
            if open(store / n, "rb").read()[8:] == new][0]
    full = open(store / slot, "rb").read()
    for cut in range(total + 1):
        with open(store / slot, "wb") as f:
            f.write(full[:cut])
        got = bytes(fwstore.load())
        assert got == (new if cut == total else old), cut
        # and the next save after the cut still keeps a good model at every step
    fwstore.save(new)
    assert bytes(fwstore.load()) == new


def test_store_never_overwrites_the_only_good_slot(store):
    old, new, newer = _blobs()
    fwstore.save(old)
    fwstore.save(new)
    names = sorted(os.listdir(store))
    newest = [n for n in names if open(store / n, "rb").read()[8:] == new][0]
    other = [n for n in names if n != newest][0]
    data = open(store / newest, "rb").read()
    with open(store / newest, "wb") as f:      # newest slot torn: old is the good one
        f.write(data[:-3])
    assert bytes(fwstore.load()) == old
    kept = open(store / other, "rb").read()
    fwstore.save(newer)                        # must go into the torn slot
    assert open(store / other, "rb").read() == kept
    assert bytes(fwstore.load()) == newer


def test_store_rejects_a_slot_with_a_wrong_length(store):
    old, new, _ = _blobs()
    fwstore.save(old)
    fwstore.save(new)
    slot = [n for n in os.listdir(store) if open(store / n, "rb").read()[8:] == new][0]
    data = bytearray(open(store / slot, "rb").read())
    data[4] += 1                               # header claims one byte more
    open(store / slot, "wb").write(bytes(data))
    assert bytes(fwstore.load()) == old


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
