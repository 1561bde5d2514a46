# Atomic model slot. The micro:bit fs has no rename, so two slot files hold
# gen (u32 LE) + .ndm; a save overwrites the older slot with gen+1 and reads it
# back. A power cut tears at most the slot being written, whose .ndm CRC then
# fails: load() returns the newest slot whose CRC holds, the old or the new.
import struct
import fwmodel

DIR = ""
SLOTS = ("ndm_a", "ndm_b")


def _gen(i):
    # generation in slot i, or -1 if it is missing or too short
    try:
        f = open(DIR + SLOTS[i], "rb")
        h = f.read(4)
        f.close()
    except OSError:
        return -1
    return struct.unpack("<I", h)[0] if len(h) == 4 else -1


def _read(i):
    # the .ndm in slot i if its CRC-32 trailer holds, else None
    try:
        f = open(DIR + SLOTS[i], "rb")
        f.read(4)
        b = bytearray(f.read())
        f.close()
    except OSError:
        return None
    n = len(b) - 4
    if n < 10 or fwmodel.crc(b, n) != struct.unpack_from("<I", b, n)[0]:
        return None
    return b


def load():
    # bytearray of the last good model, or None
    g = (_gen(0), _gen(1))
    for i in ((0, 1) if g[0] >= g[1] else (1, 0)):
        if g[i] >= 0:
            b = _read(i)
            if b is not None:
                return b
    return None


_w = None


def begin(total):
    # start writing a model of total bytes into the slot not holding the
    # newest good model; the old one stays loadable until commit
    global _w
    g = (_gen(0), _gen(1))
    i = 0 if g[0] < g[1] else 1
    if g[1 - i] >= 0 and _read(1 - i) is None:
        i = 1 - i
    f = open(DIR + SLOTS[i], "wb")
    f.write(struct.pack("<I", (max(g) + 1) & 0xFFFFFFFF))
    _w = [f, i, 0, total]


def write(off, chunk):
    # append chunk at byte off of the model (chunks must arrive in order)
    if _w is None or off != _w[2] or off + len(chunk) > _w[3]:
        raise ValueError("out of order")
    _w[0].write(chunk)
    _w[2] += len(chunk)


def commit():
    # close and verify by reading back; True if the new model is the slot now
    global _w
    w, _w = _w, None
    if w is None:
        return False
    w[0].close()
    return w[2] == w[3] and _read(w[1]) is not None


def save(buf):
    # persist buf atomically; raises OSError if the read-back fails
    begin(len(buf))
    write(0, buf)
    if not commit():
        raise OSError("model slot did not verify")
