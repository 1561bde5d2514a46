"""Model forward passes and the .ndm round trip / rejection of bad files."""
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from neurondyn import ndm
from neurondyn.model import Model, InvalidInput


@st.composite
def models(draw):
    d_in = draw(st.integers(1, 8))
    d_out = draw(st.integers(1, 4))
    k = draw(st.integers(0, 5))
    w = np.array(draw(st.lists(st.lists(st.integers(-2, 2), min_size=d_in, max_size=d_in),
                               min_size=k, max_size=k)), dtype=float).reshape(k, d_in)
    fl = st.floats(-3, 3, allow_nan=False, width=32)
    c = draw(st.lists(fl, min_size=k, max_size=k))
    a = draw(st.lists(st.lists(fl, min_size=d_out, max_size=d_out), min_size=k, max_size=k))
    b = draw(st.lists(fl, min_size=d_out, max_size=d_out))
    o = draw(st.lists(st.floats(-2, 0, width=32), min_size=d_in, max_size=d_in))
    return Model(o, np.ones(d_in), w, c, np.array(a).reshape(k, d_out), b)


@settings(max_examples=150, deadline=None)
@given(models())
def test_roundtrip_is_exact(model):
    data = ndm.dumps(model)
    back = ndm.loads(data)
    assert ndm.dumps(back) == data
    m32 = model.rounded_to_float32()
    for attr in ("offset", "scale", "exponents", "log_gain", "readout", "bias"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(m32, attr))
    assert back.inputs == model.inputs and back.outputs == model.outputs


@settings(max_examples=100, deadline=None)
@given(models(), st.integers(0, 2**31))
def test_integer_path_equals_log_path(model, seed):
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.5, 3.0, size=(20, model.d_in))
    np.testing.assert_allclose(model.predict_integer(raw), model.predict(raw), rtol=1e-9, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(models(), st.data())
def test_any_single_byte_corruption_is_rejected(model, data):
    blob = bytearray(ndm.dumps(model))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ndm.NdmError):
        ndm.loads(bytes(blob))


@settings(max_examples=100, deadline=None)
@given(models(), st.data())
def test_truncation_is_rejected(model, data):
    blob = ndm.dumps(model)
    n = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(ndm.NdmError):
        ndm.loads(blob[:n])


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_bad_exponent_with_valid_crc_is_rejected():
    m = Model([0], [1], [[1]], [0.0], [[1.0]], [0.0])
    body = bytearray(ndm.dumps(m, names=False)[:-4])
    body[10 + 8 + 2] = 3  # the exponent byte of atom 0
    with pytest.raises(ndm.NdmError, match="exponent"):
        ndm.loads(_with_crc(bytes(body)))


def test_bad_version_and_magic():
    m = Model([0], [1], [[1]], [0.0], [[1.0]], [0.0])
    body = bytearray(ndm.dumps(m)[:-4])
    body[4] = 9
    with pytest.raises(ndm.NdmError, match="version"):
        ndm.loads(_with_crc(bytes(body)))
    with pytest.raises(ndm.NdmError, match="magic"):
        ndm.loads(b"XXXX" + bytes(20))


def test_invalid_inputs_are_reported_per_row():
    m = Model([0, 0], [1, 1], [[1, -1]], [0.0], [[1.0]], [0.0])
    raw = np.array([[1.0, 2.0], [0.0, 1.0], [np.nan, 1.0], [2.0, 2.0]])
    with pytest.raises(InvalidInput) as err:
        m.predict(raw)
    assert err.value.rows == [1, 2]
    assert list(m.valid_rows(raw)) == [True, False, False, True]


def test_known_values():
    # y = 0.5 + 2 * e^0 * x1^2 / x2
    m = Model([0, 0], [1, 1], [[2, -1]], [0.0], [[2.0]], [0.5])
    assert m.predict([[3.0, 2.0]])[0, 0] == pytest.approx(0.5 + 2 * 9 / 2)
