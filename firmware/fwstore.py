# Atomic model slot; the micro:bit fs has no rename. Slot files ndm_a/ndm_b
# hold gen u32 + length u32 + .ndm; save() writes the slot NOT holding the
# newest valid model with gen + 1, then reads it back. A power cut tears
# only that slot, whose CRC then fails (CRC-32 over a .ndm plus its trailer
# is always 0x2144DF1C), so load() finds the old model or the new one.
from array import array
from struct import pack, unpack
import fwmodel

DIR = ""


def _slot(i, keep):
    # (gen, .ndm bytearray if keep) of slot i; gen -1 if missing or torn
    try:
        f = open(DIR + "ndm_" + "ab"[i], "rb")
    except OSError:
        return -1, None
    b = bytearray(8)
    g = -1
    if f.readinto(b) == 8:
        g, n = unpack("<II", b)
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
    return g, b


def load():
    # bytearray of the newest whole, CRC-valid model, or None
    a, b = _slot(0, 0)[0], _slot(1, 0)[0]
    return None if a < 0 and b < 0 else _slot(0 if a >= b else 1, 1)[1]


def save(buf):
    # persist buf atomically; OSError if it does not read back whole
    a, b = _slot(0, 0)[0], _slot(1, 0)[0]
    i = 1 if a > b else 0
    f = open(DIR + "ndm_" + "ab"[i], "wb")
    f.write(pack("<II", max(a, b) + 1, len(buf)))
    f.write(buf)
    f.close()
    if _slot(i, 0)[0] < 0:
        raise OSError("model slot did not verify")
