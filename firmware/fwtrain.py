# Feeling (docs/feeling.md): the board learns c, a, b; exponents fixed.
# TRAIN 0x20: flags u8 (bit0 eval only), mu f32 (0: 0.5), samples of d_in
# raw + d_out target f32 -> used u16, bad u16, d_out x SSE f32 (errors
# before each step). TRAIN_COMMIT 0x21 -> hash u32 (fwstore.save).
# PULL 0x13: offset u32, n u16 -> total u32, hash u32, .ndm bytes.
# Normalised LMS, r = mu / (1 + sum_k phi_k^2 (1 + |a_k|^2)), a bound of
# the largest eigenvalue of J J^T: stable for any mu in (0, 2). The .ndm
# bytes B hold the parameters (the asm path reads them in place, gains e^c
# from m.g); the CRC trailer is renewed after each TRAIN message.
from array import array
from math import exp
from struct import pack_into as pk, unpack_from as up
import fwstore
from fwmodel import crc

S = None


def f(B, o):
    return up('<f', B, o)[0]


def new(m):
    # m, .ndm B, factor bytes F, offsets O (each c, then bias), scratch
    B = getattr(m, 'b', None) or fwstore.load()
    d, e, k = B[6], B[7], B[8]
    F = bytearray()
    O = array('i', [0] * (k + 1))
    p = 10 + 8 * d
    for a in range(k):
        q = p + 1 + 2 * B[p]
        F += B[p:q]
        O[a] = q
        p = q + 4 + 4 * e
    O[k] = p
    z = [0.0]
    return (m, B, F, O, array('f', z * k), array('f', z * (d + e)),
            array('f', z * e), array('f', z * e))


def learn(m, B, F, O, ph, v, y, mu):
    # one step from raw inputs v (then targets); y = prediction - target
    d, e, k = B[6], B[7], B[8]
    q = O[k]
    for i in range(e):
        y[i] = f(B, q + 4 * i) - v[d + i]
    p = 0
    n = 1.0
    for a in range(k):
        u = exp(f(B, O[a]))
        for t in range(F[p]):
            j = F[p + 1 + 2 * t]
            x = f(B, 14 + 8 * j) * (v[j] - f(B, 10 + 8 * j))
            w = F[p + 2 + 2 * t]
            if w > 127:
                x = 1 / x
            u *= x if w in (1, 255) else x * x
        p += 1 + 2 * F[p]
        ph[a] = u
        q = 1.0
        for i in range(e):
            x = f(B, O[a] + 4 + 4 * i)
            q += x * x
            y[i] += x * u
        n += u * u * q
    r = mu / n
    for a in range(k):
        q = O[a]
        g = 0.0
        for i in range(e):
            x = f(B, q + 4 + 4 * i)
            g += y[i] * x
            pk('<f', B, q + 4 + 4 * i, x - r * y[i] * ph[a])
        c = f(B, q) - r * g * ph[a]
        if -80 < c < 80:
            pk('<f', B, q, c)
            if hasattr(m, 'g'):
                m.g[a] = exp(c)
    q = O[k]
    for i in range(e):
        pk('<f', B, q + 4 * i, f(B, q + 4 * i) - r * y[i])


def seal(m, B):
    # renew the CRC trailer (= model hash); the plain path re-reads B
    n = len(B) - 4
    pk('<I', B, n, crc(B, n))
    if hasattr(m, 'm'):
        m.load(B)
    m.crc = up('<I', B, n)[0]


def do(self, t, s, n):
    # PULL, TRAIN, TRAIN_COMMIT for fwdisp's Server (fwcmd hands over every
    # type it does not know): replies, or returns an error code
    if t not in (0x13, 0x20, 0x21):
        return 4
    k = run(self, t, n)
    if k < 0:
        return -k
    self.L.reply(0x80 | t, s, k)
    return 0


def run(self, t, n):
    # reply length, or -error code
    global S
    m = self.m
    if m is None:
        return -3
    if S is None or S[0] is not m:
        S = None
        S = new(m)
    m, B, F, O, ph, v, y, ss = S
    d, e = B[6], B[7]
    g = self.g
    p = self.L.raw
    if t == 0x21:
        fwstore.save(B)
        pk('<I', p, 2, m.crc)
        return 4
    if t == 0x13:
        if n != 6:
            return -2
        o, c = up('<IH', g, 0)
        c = max(0, min(c, len(p) - 12, len(B) - o))
        pk('<II', p, 2, len(B), m.crc)
        for i in range(c):
            p[10 + i] = B[o + i]
        return 8 + c
    w = 4 * (d + e)
    n -= 5
    if n < 0 or n % w:
        return -2
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
            learn(m, B, F, O, ph, v, y, mu)
        for i in range(e):
            ss[i] += y[i] * y[i]
    if u and not g[0] & 1:
        seal(m, B)
    pk('<HH', p, 2, u, r)
    for i in range(e):
        pk('<f', p, 6 + 4 * i, ss[i])
    return 4 + 4 * e
