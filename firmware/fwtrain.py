# Feeling (docs/feeling.md): the board learns c, a, b; exponents fixed.
# TRAIN 0x20: flags u8 (bit0 eval only), mu f32 (0: 0.5), samples of d_in
# raw + d_out target f32 -> used u16, bad u16, d_out x SSE f32 (errors
# before each step). TRAIN_COMMIT 0x21 -> hash u32 (fwstore.save).
# PULL 0x13: offset u32, n u16 -> total u32, hash u32, .ndm bytes.
# The step rule is fwlearn's. The .ndm bytes B hold the parameters (the
# asm path keeps its model's bytes in m.b; the plain path's come from
# fwstore and the model re-reads them); the CRC trailer (the model hash)
# is renewed after each TRAIN message. fwstore and fwmodel are imported
# where used, so fwtrain compiles on its own. do(me, type, seq, n) is the
# dispatcher's hook (fwdisp: me.m model, me.g message, me.L.raw reply
# buffer, me.L.reply): replies and returns 0, or returns an error code.
from array import array
from struct import pack_into as pk, unpack_from as up
from fwlearn import f, learn

S = None


def new(m):
    # per model: B, offsets O of each c then of the bias, scratch
    B = getattr(m, 'b', None)
    if B is None:
        import fwstore
        B = fwstore.load()
    d, e, k = B[6], B[7], B[8]
    O = array('i', [0] * (k + 1))
    p = 10 + 8 * d
    for a in range(k):
        O[a] = p + 1 + 2 * B[p]
        p = O[a] + 4 + 4 * e
    O[k] = p
    z = [0.0]
    return (m, B, O, array('f', z * k), array('f', z * (d + e)),
            array('f', z * e), array('f', z * e))


def do(self, t, s, n):
    global S
    m = self.m
    if t not in (19, 32, 33):
        return 4
    if m is None:
        return 3
    if S is None or S[0] is not m:
        S = None
        S = new(m)
    B = S[1]
    g = self.g
    p = self.L.raw
    r = len(B)
    if t == 33:
        import fwstore
        fwstore.save(B)
        pk('<I', p, 2, m.crc)
        k = 4
    elif t == 19:
        if n != 6:
            return 2
        o, k = up('<IH', g, 0)
        k = max(0, min(k, len(p) - 12, r - o))
        pk('<II', p, 2, r, m.crc)
        for i in range(k):
            p[10 + i] = B[o + i]
        k += 8
    else:
        k = train(S, g, p, n - 5)
        if k < 0:
            return 2
    self.L.reply(0x80 | t, s, k)
    return 0


def train(S, g, p, n):
    # TRAIN/EVAL over the n sample bytes at g[5:]; reply length or -1
    m, B, O, ph, v, y, ss = S
    d, e = B[6], B[7]
    w = 4 * (d + e)
    if n < 0 or n % w:
        return -1
    mu = f(g, 1) or 0.5
    u = r = 0
    for i in range(e):
        ss[i] = 0.0
    for o in range(5, 5 + n, w):
        for j in range(d + e):
            v[j] = f(g, o + 4 * j)
        if m.infer(v, y):
            r += 1
            continue
        u += 1
        if g[0] & 1:
            for i in range(e):
                y[i] -= v[d + i]
        else:
            learn(m, B, O, ph, v, y, mu)
        for i in range(e):
            ss[i] += y[i] * y[i]
    if u and not g[0] & 1:
        from fwmodel import crc
        n = len(B) - 4
        pk('<I', B, n, crc(B, n))
        if hasattr(m, 'm'):
            m.load(B)
        m.crc = up('<I', B, n)[0]
    pk('<HH', p, 2, u, r)
    for i in range(e):
        pk('<f', p, 6 + 4 * i, ss[i])
    return 4 + 4 * e
