"""The serial protocol of docs/protocol.md, host side: frames, constants, payloads.

Pure functions and a stream decoder, no I/O: ``neurondyn.link`` moves the bytes,
the firmware (``firmware/fwcobs.py`` / ``fwcasm.py``) implements the same framing
and ``tests/test_protocol.py`` checks both give identical bytes.
"""
from __future__ import annotations

import struct

import numpy as np

PROTO_VERSION = 1

# request types (a reply is type | REPLY)
HELLO, STATS, QSCALE, INFER, REPL = 0x01, 0x02, 0x03, 0x04, 0x05
UP_BEGIN, UP_DATA, UP_COMMIT, PULL = 0x10, 0x11, 0x12, 0x13
TRAIN = 0x20                              # a commit is PULL + upload (feeling.commit)
MORE = 0x40                               # fragment flag: more of this message follows
REPLY = 0x80
ACK = 0xFE                                # reply to a MORE fragment
ERROR = 0xFF                              # payload: code, request type

# error codes
E_BAD_CRC, E_BAD_LEN, E_NO_MODEL, E_UNKNOWN, E_BAD_INPUT = 1, 2, 3, 4, 5
E_NO_MEM, E_BAD_MODEL, E_BUSY, E_BAD_STATE = 6, 7, 8, 9
ERROR_NAMES = {
    E_BAD_CRC: "bad CRC", E_BAD_LEN: "bad length", E_NO_MODEL: "no model on the board",
    E_UNKNOWN: "unknown request type", E_BAD_INPUT: "bad input", E_NO_MEM: "out of memory",
    E_BAD_MODEL: "bad model", E_BUSY: "busy", E_BAD_STATE: "bad sequence/state",
}
NAK_CODES = (E_BAD_CRC, E_BAD_LEN)

FMT_F32, FMT_I16 = 0, 1
I16_MISSING = -32768
STATS_FIELDS = ("frames_ok", "bad_crc", "bad_frame", "errors", "dups", "samples",
                "infer_us", "request_us", "infer_requests", "heap_free", "bad_input")

MIN_RAW = 4             # type + seq + CRC


class FrameError(ValueError):
    """A frame that is not valid COBS, too short, or fails its CRC."""


# -- CRC-16/CCITT-FALSE ------------------------------------------------------
def _crc_table():
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); crc16(b"123456789") == 0x29B1."""
    c = 0xFFFF
    for b in bytes(data):
        c = ((c << 8) & 0xFFFF) ^ _CRC_TABLE[(c >> 8) ^ b]
    return c


# -- COBS --------------------------------------------------------------------
def cobs_encode(data) -> bytes:
    """COBS without delimiters; the same algorithm as the firmware (same bytes)."""
    out = bytearray([0])
    code_pos, code = 0, 1
    for v in bytes(data):
        if v:
            out.append(v)
            code += 1
        if v == 0 or code == 0xFF:
            out[code_pos] = code
            code_pos = len(out)
            out.append(0)
            code = 1
    out[code_pos] = code
    return bytes(out)


def cobs_decode(data) -> bytes:
    data = bytes(data)
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0:
            raise FrameError("0x00 inside a COBS frame")
        end = i + code - 1
        if end > n or 0 in data[i:end]:
            raise FrameError("COBS block runs past the frame")
        out += data[i:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# -- frames ------------------------------------------------------------------
def build_frame(typ: int, seq: int, payload=b"") -> bytes:
    """Wire bytes of one frame: 0x00 COBS(type seq payload crc16) 0x00."""
    raw = bytes([typ & 0xFF, seq & 0xFF]) + bytes(payload)
    raw += struct.pack("<H", crc16(raw))
    return b"\x00" + cobs_encode(raw) + b"\x00"


def wire_size(payload_len: int) -> int:
    """Wire bytes of a frame with this payload (no zero bytes assumed: worst case)."""
    raw = payload_len + 4
    return raw + 1 + raw // 254 + 2


def parse_frame(encoded) -> tuple:
    """(type, seq, payload) from the bytes between two 0x00; FrameError if bad."""
    raw = cobs_decode(encoded)
    if len(raw) < MIN_RAW:
        raise FrameError("frame too short (%d bytes)" % len(raw))
    (crc,) = struct.unpack("<H", raw[-2:])
    if crc16(raw[:-2]) != crc:
        raise FrameError("frame CRC mismatch")
    return raw[0], raw[1], raw[2:-2]


class FrameDecoder:
    """Split a byte stream at 0x00 into frames; bad frames are counted, not raised."""

    def __init__(self, max_encoded: int = 4096):
        self.buf = bytearray()
        self.max_encoded = max_encoded
        self.bad = 0

    def feed(self, data) -> list:
        frames = []
        start = 0
        data = bytes(data)
        while True:
            z = data.find(b"\x00", start)
            if z < 0:
                self.buf += data[start:]
                if len(self.buf) > self.max_encoded:   # garbage without delimiters
                    self.buf.clear()
                    self.bad += 1
                return frames
            self.buf += data[start:z]
            start = z + 1
            if self.buf:
                try:
                    frames.append(parse_frame(self.buf))
                except FrameError:
                    self.bad += 1
                self.buf = bytearray()


# -- payloads ----------------------------------------------------------------
def hello_request() -> bytes:
    return bytes([PROTO_VERSION])


def parse_hello(payload: bytes) -> dict:
    if len(payload) < 20:
        raise FrameError("HELLO reply too short")
    proto, flags, d_in, d_out, k, _ = struct.unpack_from("<BBBBBB", payload, 0)
    model_hash, heap, max_payload, max_msg, max_reply = struct.unpack_from("<IIHHH", payload, 6)
    pos, strings = 20, []
    for _ in range(2):
        if pos >= len(payload):
            strings.append("")
            continue
        n = payload[pos]
        strings.append(bytes(payload[pos + 1:pos + 1 + n]).decode("ascii", "replace"))
        pos += 1 + n
    return {"proto": proto, "board": strings[0], "firmware": strings[1],
            "model_loaded": bool(flags & 1), "fast_paths": bool(flags & 2),
            "model_hash": model_hash if flags & 1 else None,
            "d_in": d_in, "d_out": d_out, "k": k, "heap_free": heap,
            "max_payload": max_payload, "max_msg": max_msg, "max_reply": max_reply}


def parse_stats(payload: bytes) -> dict:
    n = len(payload) // 4
    values = struct.unpack_from("<%dI" % n, payload, 0)
    out = {name: v for name, v in zip(STATS_FIELDS, values)}
    out["device_us_per_inference"] = (out["infer_us"] / out["samples"]
                                      if out.get("samples") else None)
    out["request_us_per_infer"] = (out["request_us"] / out["infer_requests"]
                                   if out.get("infer_requests") else None)
    return out


def qscale_payload(offset, scale) -> bytes:
    pairs = np.column_stack([np.asarray(offset, "<f4"), np.asarray(scale, "<f4")])
    return np.ascontiguousarray(pairs, dtype="<f4").tobytes()


def choose_int16_scale(raw) -> tuple:
    """Per-channel (offset, scale) so the data's finite range maps into -32767..32767."""
    raw = np.asarray(raw, dtype=np.float64)
    finite = np.where(np.isfinite(raw), raw, np.nan)
    with np.errstate(all="ignore"):
        lo = np.nanmin(finite, axis=0)
        hi = np.nanmax(finite, axis=0)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 0.0)
    offset = (lo + hi) / 2
    scale = (hi - lo) / 65534.0
    scale = np.where(scale > 0, scale, np.maximum(np.abs(offset), 1.0) * 1e-6)
    return (np.asarray(offset, np.float32).astype(np.float64),
            np.asarray(scale, np.float32).astype(np.float64))


def quantize_int16(raw, offset, scale) -> np.ndarray:
    """Raw rows -> int16 codes; NaN/inf become I16_MISSING (the board answers bad input)."""
    raw = np.asarray(raw, dtype=np.float64)
    with np.errstate(all="ignore"):
        q = np.rint((raw - offset) / scale)
    bad = ~np.isfinite(q)
    q = np.clip(np.where(bad, 0, q), -32767, 32767).astype(np.int16)
    q[bad] = I16_MISSING
    return q


def dequantize_int16(q, offset, scale) -> np.ndarray:
    """What the board computes from the codes (float32 arithmetic)."""
    q = np.asarray(q)
    off32, sc32 = np.float32(0) + np.asarray(offset, np.float32), np.asarray(scale, np.float32)
    out = (off32 + sc32 * q.astype(np.float32)).astype(np.float64)
    out[q == I16_MISSING] = np.nan
    return out


def infer_payload(rows, fmt: int) -> bytes:
    rows = np.asarray(rows)
    if fmt == FMT_F32:
        body = np.ascontiguousarray(rows, dtype="<f4").tobytes()
    else:
        body = np.ascontiguousarray(rows, dtype="<i2").tobytes()
    return bytes([fmt]) + body


def parse_infer(payload: bytes, n: int, d_out: int) -> tuple:
    rec = 1 + 4 * d_out
    if len(payload) != n * rec:
        raise FrameError("INFER reply has %d bytes, expected %d" % (len(payload), n * rec))
    arr = np.frombuffer(payload, dtype=np.uint8).reshape(n, rec)
    status = arr[:, 0].astype(np.int64)
    preds = np.ascontiguousarray(arr[:, 1:]).view("<f4").reshape(n, d_out).astype(np.float64)
    preds[status != 0] = np.nan
    return preds, status
