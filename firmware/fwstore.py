# Atomic model slot; the micro:bit fs has no rename. Two slot files ndm_a,
# ndm_b hold gen (u32) + length (u32) + .ndm. A save streams into the slot
# NOT holding the newest valid model, with gen + 1, then reads it back. A
# power cut tears only that slot, whose CRC then fails (CRC-32 over a .ndm
# and its trailer is always 0x2144DF1C), so load() finds the old or the new.
from array import array
from struct import pack, unpack
import fwmodel

DIR = ""
_w = None


def _slot(i, keep):
    # (gen, .ndm bytearray if keep) of slot i; gen -1 if missing or torn
    try:
        f = open(DIR + "ndm_" + "ab"[i], "rb")
    except OSError:
        return -1, None
    h = bytearray(8)
    g = -1
    if f.readinto(h) == 8:
        g, n = unpack("<II", h)
        b = bytearray(n if keep else 32)
        s = array('I', [0])
        k = 0
        while k <= n:
            r = f.readinto(b)
            if not r:
                break
            fwmodel.crc(b, r, s)
            k += r
        if k != n or s[0] != 0x2144DF1C:
            g = -1
    f.close()
    return g, (b if keep and g >= 0 else None)


def load():
    # bytearray of the newest whole, CRC-valid model, or None
    a = _slot(0, 0)[0]
    b = _slot(1, 0)[0]
    if a < 0 and b < 0:
        return None
    return _slot(0 if a >= b else 1, 1)[1]


def begin(n):
    # start streaming an n-byte model into the slot not holding the newest
    # valid one (the running model stays loadable until commit)
    global _w
    a = _slot(0, 0)[0]
    b = _slot(1, 0)[0]
    i = 1 if a > b else 0
    f = open(DIR + "ndm_" + "ab"[i], "wb")
    f.write(pack("<II", max(a, b) + 1, n))
    _w = [f, i, 0, n, max(a, b) + 1]


def write(off, chunk):
    # append chunk at byte off of the model (chunks must arrive in order)
    if _w is None or off != _w[2] or off + len(chunk) > _w[3]:
        raise ValueError("out of order")
    _w[0].write(chunk)
    _w[2] += len(chunk)


def commit():
    # close and read back; True if the new model is now the one load() gives
    global _w
    w, _w = _w, None
    if w is None:
        return False
    w[0].close()
    return w[2] == w[3] and _slot(w[1], 0)[0] == w[4]


def save(buf):
    # persist buf atomically; OSError if the read-back fails
    begin(len(buf))
    write(0, buf)
    if not commit():
        raise OSError("model slot did not verify")
