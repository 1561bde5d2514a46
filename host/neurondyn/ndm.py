"""The ``.ndm`` model file: the same little-endian bytes on host and board.

Layout (format version 1)::

    offset  size        field
    0       4           magic b"NDYN"
    4       1           format version (1)
    5       1           flags: bit0 quantized, bit1 names section present
    6       1           d_in   (1..255)
    7       1           d_out  (1..255)
    8       1           K      (0..255)
    9       1           reserved, 0
    10      8*d_in      per channel: o (float32), s (float32)
    ...     per atom:   nnz (uint8, 0..d_in)
                        nnz pairs: input index (uint8, strictly increasing),
                                   exponent (int8 in -2..2, non-zero) when quantized,
                                   or exponent (float32) when not quantized
                        c (float32)
                        readout (float32 x d_out)
    ...     4*d_out     bias (float32 x d_out)
    ...     optional names section (flag bit1; host only, the board skips it):
                        length L (uint16), then L bytes of UTF-8: the d_in input
                        names then the d_out output names, separated by "\\n"
    end-4   4           CRC-32 (zlib polynomial) of every byte before it

Readers validate everything (sizes, ranges, finiteness, CRC) and raise
``NdmError`` with one clear sentence.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from .model import EXPONENT_MAX, EXPONENT_MIN, Model

MAGIC = b"NDYN"
FORMAT_VERSION = 1
FLAG_QUANTIZED = 0x01
FLAG_NAMES = 0x02
HEADER = struct.Struct("<4sBBBBBB")
MAX_DIM = 255


class NdmError(ValueError):
    """A .ndm file (or byte string) is not a valid model."""


def _f32(values) -> bytes:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > np.finfo(np.float32).max):
        raise NdmError("a parameter is not finite in float32")
    return np.asarray(arr, dtype="<f4").tobytes()


def dumps(model: Model, names: bool = True) -> bytes:
    """Serialise a model; parameters are rounded to float32."""
    d_in, d_out, k = model.d_in, model.d_out, model.k_star
    if not (1 <= d_in <= MAX_DIM and 1 <= d_out <= MAX_DIM and 0 <= k <= MAX_DIM):
        raise NdmError("model too large for .ndm (d_in, d_out, K must be <= 255)")
    flags = (FLAG_QUANTIZED if model.quantized else 0) | (FLAG_NAMES if names else 0)
    out = bytearray(HEADER.pack(MAGIC, FORMAT_VERSION, flags, d_in, d_out, k, 0))
    out += _f32(np.column_stack([model.offset, model.scale]))
    for a in range(k):
        nz = np.flatnonzero(model.exponents[a])
        out.append(nz.size)
        for j in nz:
            e = model.exponents[a, j]
            if model.quantized:
                out += struct.pack("<Bb", j, int(e))
            else:
                out += struct.pack("<B", j) + _f32([e])
        out += _f32([model.log_gain[a]])
        out += _f32(model.readout[a])
    out += _f32(model.bias)
    if names:
        all_names = list(model.inputs) + list(model.outputs)
        for n in all_names:
            if not n or "\n" in n:
                raise NdmError("column name %r cannot be stored" % n)
        blob = "\n".join(all_names).encode("utf-8")
        if len(blob) > 0xFFFF:
            raise NdmError("names section too long")
        out += struct.pack("<H", len(blob)) + blob
    out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise NdmError("truncated model file (ends inside %s)" % what)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def f32(self, n: int, what: str) -> np.ndarray:
        arr = np.frombuffer(self.take(4 * n, what), dtype="<f4").astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise NdmError("%s contains NaN or inf" % what)
        return arr


def loads(data: bytes) -> Model:
    """Parse and validate .ndm bytes; raise NdmError on anything wrong."""
    data = bytes(data)
    if len(data) < HEADER.size + 4:
        raise NdmError("not a model file: %d bytes is too short" % len(data))
    if data[:4] != MAGIC:
        raise NdmError("not a model file (bad magic)")
    (stored_crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != stored_crc:
        raise NdmError("model file is corrupted (CRC-32 mismatch)")
    _, version, flags, d_in, d_out, k, reserved = HEADER.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise NdmError("unsupported model format version %d (this tool reads %d)"
                       % (version, FORMAT_VERSION))
    if flags & ~(FLAG_QUANTIZED | FLAG_NAMES) or reserved:
        raise NdmError("model file has unknown flags")
    if d_in < 1 or d_out < 1:
        raise NdmError("model file declares an empty input or output")
    quantized = bool(flags & FLAG_QUANTIZED)
    r = _Reader(data, len(data) - 4)
    r.pos = HEADER.size
    ch = r.f32(2 * d_in, "channel map").reshape(d_in, 2)
    if np.any(ch[:, 1] == 0):
        raise NdmError("a channel scale is zero")
    w = np.zeros((k, d_in))
    c = np.zeros(k)
    a = np.zeros((k, d_out))
    for atom in range(k):
        nnz = r.take(1, "atom %d" % atom)[0]
        if nnz > d_in:
            raise NdmError("atom %d has %d exponents for %d inputs" % (atom, nnz, d_in))
        last = -1
        for _ in range(nnz):
            j = r.take(1, "atom %d" % atom)[0]
            if j >= d_in or j <= last:
                raise NdmError("atom %d has a bad input index %d" % (atom, j))
            last = j
            if quantized:
                (e,) = struct.unpack("<b", r.take(1, "atom %d" % atom))
                if e == 0 or not EXPONENT_MIN <= e <= EXPONENT_MAX:
                    raise NdmError("atom %d has exponent %d outside -2..2" % (atom, e))
            else:
                e = r.f32(1, "atom %d exponent" % atom)[0]
            w[atom, j] = e
        c[atom] = r.f32(1, "atom %d log-gain" % atom)[0]
        a[atom] = r.f32(d_out, "atom %d readout" % atom)
    b = r.f32(d_out, "bias")
    inputs, outputs = [], []
    if flags & FLAG_NAMES:
        (length,) = struct.unpack("<H", r.take(2, "names section"))
        try:
            names = r.take(length, "names section").decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise NdmError("names section is not UTF-8") from None
        if len(names) != d_in + d_out or not all(names):
            raise NdmError("names section does not match d_in + d_out")
        inputs, outputs = names[:d_in], names[d_in:]
    if r.pos != r.end:
        raise NdmError("model file has %d unexpected trailing bytes" % (r.end - r.pos))
    try:
        return Model(ch[:, 0], ch[:, 1], w, c, a, b, inputs, outputs, quantized)
    except ValueError as exc:
        raise NdmError("invalid model: %s" % exc) from None


def read(path) -> Model:
    """Read a .ndm file; NdmError for a bad file, OSError for a missing one."""
    with open(path, "rb") as fh:
        return loads(fh.read())


def write(path, model: Model, names: bool = True) -> None:
    """Write atomically: the file appears whole or not at all."""
    from .fsutil import atomic_write_bytes
    atomic_write_bytes(path, dumps(model, names=names))


def model_hash(data: bytes) -> int:
    """The id a board reports for its model: the CRC-32 trailer of the file."""
    return struct.unpack("<I", bytes(data[-4:]))[0]
