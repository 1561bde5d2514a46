# INFER of docs/protocol.md 4 (split from fwdisp so each module compiles in
# the V1's small heap): unpack float32 or int16 samples, run the forward pass,
# pack a status byte and d_out float32 per sample. Received bytes are only
# parsed as numbers.
import struct
import fwio as P
from fwio import copy, FAST


def infer(self, s, n):
    # INFER for Server self: fmt byte, then samples (float32 or int16);
    # one status byte + d_out float32 per sample; error code if refused
    L = self.L
    m = self.m
    if m is None:
        return 3
    g = self.g
    f = g[0]
    di = m.d_in
    do = m.d_out
    w = (4 if f == 0 else 2) * di
    if f > 1:
        return 2
    if f and not self.q:
        return 9
    n -= 1
    r = 1 + 4 * do
    k = n // w
    if n != k * w or k * r > P.RMAX:
        return 2
    x = self.x
    y = self.y
    p = L.raw
    st = L.st
    tu = P.ticks_us
    a = 1
    o = 2
    us = 0
    for i in range(k):
        if f:
            for j in range(di):
                v = g[a + 2 * j] | (g[a + 2 * j + 1] << 8)
                x[j] = self.qo[j] + self.qs[j] * (v - 65536 if v > 32768 else v) if v != 32768 else float('nan')
        elif FAST:
            copy(x, 0, g, a | (w << 16))
        else:
            for j in range(di):
                x[j] = struct.unpack_from('<f', g, a + 4 * j)[0]
        t0 = tu()
        rc = m.infer(x, y)
        us += P.ticks_diff(tu(), t0)
        p[o] = rc
        if rc:
            st[10] += 1
            for j in range(o + 1, o + r):
                p[j] = 0
        elif FAST:
            copy(p, o + 1, y, 4 * do << 16)
        else:
            for j in range(do):
                struct.pack_into('<f', p, o + 1 + 4 * j, y[j])
        o += r
        a += w
    L.reply(0x84, s, k * r)
    st[5] += k
    st[6] += us
    st[8] += 1
    st[7] += P.ticks_diff(tu(), L.t0)
    return 0
