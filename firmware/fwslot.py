# One slot of the model store (fwload, fwsave): slot files ndm_a and ndm_b
# hold gen u8 + length u16 + the .ndm; a torn slot fails its CRC (the CRC-32
# over a .ndm and its trailer is always 0x2144DF1C). Run from this file
# (fwd.lazy). me: fwd on a board (its CRC-32 kernel), or None under CPython
# (fwplain's CRC-32: ndyn builds an image's slot files with these modules).
from array import array


def do(me, i, keep):
    # (gen, the .ndm if keep) of slot i; gen -1 if missing or torn
    try:
        f = open("ndm_" + "ab"[i], "rb")
    except OSError:
        return -1, None
    h = f.read(3)
    g = -1
    b = None
    if len(h) == 3:
        n = h[1] | h[2] << 8
        b = bytearray(n if keep else 32)
        s = array('I', [0])
        k = r = 1
        while r and k <= n:
            r = f.readinto(b)
            if me and me.A:
                me.X(b, r, s, me.E[6])
            else:
                from fwplain import crc32
                crc32(b, r, s)
            k += r
        if k == n + 1 and s[0] == 0x2144DF1C:
            g = h[0]
    f.close()
    return g, b
