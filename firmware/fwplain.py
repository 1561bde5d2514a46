# The model kernels in plain MicroPython, for boards without the Thumb
# kernels (fwk.bin) and as the reference those are tested against: .ndm
# parser (load), forward pass (infer), INFER over a message (inf, the twin
# of firmware/asm/fwfinf.py), CRC-32, and call(a, b, c, kernel), the twin
# of fwxa.X. load fills a Model: m.m = (o/s interleaved, factors (nnz,
# index, exponent byte)..., gains, readout, bias), d_in, d_out, k, crc.
from array import array
from math import exp
from struct import pack_into, unpack, unpack_from


class Model:
    R = 250      # largest reply payload (fwinst sets the board's)
    q = None     # QSCALE pairs (offset, scale) per input, or None


def call(a, b, c, k):
    # X(a, b, c, kernel) of fwd where the kernels are Python functions
    return k(a, b, c)

_T = (0, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
      0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8,
      0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C)


def crc32(buf, n, s):
    # as fwk.crc32: CRC-32 of buf[:n] continuing s[0]; a nibble table
    # (16 entries, not 256: RAM)
    c = s[0] ^ 0xFFFFFFFF
    for i in range(n):
        c ^= buf[i]
        c = (c >> 4) ^ _T[c & 15]
        c = (c >> 4) ^ _T[c & 15]
    s[0] = c ^ 0xFFFFFFFF


def _fl(b, p, n):
    # array('f') of the n float32 at b[p:]; ValueError on NaN or inf
    if p + 4 * n > len(b) - 4:
        raise ValueError
    a = array('f', unpack('<%df' % n, b[p:p + 4 * n]))
    for v in a:
        if not -3.5e38 < v < 3.5e38:
            raise ValueError
    return a


def load(m, b, n):
    # fwmodel.Model.load for the plain path
    try:
        _parse(m, b, n)
    except (ValueError, IndexError):
        return 7
    return 0


def _parse(m, b, n):
    if n < 10 or b[:5] != b'NDYN\x01' or b[5] not in (1, 3) or b[9]:
        raise ValueError
    di, do, k = b[6], b[7], b[8]
    c = unpack_from('<I', b, n)[0]
    s = array('I', [0])
    crc32(b, n, s)
    if not di or not do or s[0] != c:
        raise ValueError
    p = 10 + 8 * di
    os = _fl(b, 10, 2 * di)
    for j in range(di):
        if os[2 * j + 1] == 0:
            raise ValueError
    fac = bytearray()
    g = array('f')
    A = array('f')
    for a in range(k):
        q = p + 1 + 2 * b[p]
        fac += b[p:q]
        j = -1
        for t in range(p + 1, q, 2):
            if b[t] <= j or b[t + 1] not in (1, 2, 254, 255):
                raise ValueError
            j = b[t]
        if j >= di:
            raise ValueError
        g.append(exp(_fl(b, q, 1)[0]))
        if not g[a] < 3.4e38:
            raise ValueError
        for v in _fl(b, q + 4, do):
            A.append(v)
        p = q + 4 + 4 * do
    bias = _fl(b, p, do)
    p += 4 * do
    if b[5] & 2:
        p += 2 + b[p] + (b[p + 1] << 8)
    if p != n:
        raise ValueError
    m.m = (os, fac, g, A, bias)
    m.f = fac
    m.x = array('f', [0.0] * di)
    m.p = array('f', [0.0] * max(k, 1))
    m.xr = array('f', [0.0] * di)
    m.y = array('f', [0.0] * do)
    m.d_in, m.d_out, m.k, m.crc = di, do, k, c


def infer(m, r, y):
    # same contract as fwmodel.Model.infer; divides once per atom
    os, f, g, A, b = m.m
    x = m.x
    for j in range(m.d_in):
        v = os[2 * j + 1] * (r[j] - os[2 * j])
        if not 0.0 < v < 3.5e38:
            return 5
        x[j] = v
    ph = m.p
    p = 0
    for a in range(m.k):
        u = g[a]
        d = 1.0
        for t in range(f[p]):
            v = x[f[p + 1]]
            e = f[p + 2]
            if e > 127:
                d *= v if e == 255 else v * v
            else:
                u *= v if e == 1 else v * v
            p += 2
        p += 1
        ph[a] = u / d
    do = m.d_out
    for i in range(do):
        acc = b[i]
        q = i
        for a in range(m.k):
            acc += A[q] * ph[a]
            q += do
        y[i] = acc
    return 0


def inf(m, g, p):
    # INFER: n = p[0] | p[1] << 8 message bytes at g (fmt u8 + samples) ->
    # records (status u8 + d_out float32) at p[2:]; k | k*r << 8, -2 or -9
    n = (p[0] | (p[1] << 8)) - 1
    f = g[0]
    di = m.d_in
    do = m.d_out
    r = 1 + 4 * do
    w = (2 if f else 4) * di
    if f > 1 or n < 0:
        return -2
    k = n // w
    if n != k * w or k * r > m.R:
        return -2
    if f and m.q is None:
        return -9
    q = m.q
    x = m.xr
    y = m.y
    a = 1
    o = 2
    for i in range(k):
        for j in range(di):
            if f:
                v = g[a + 2 * j] | (g[a + 2 * j + 1] << 8)
                x[j] = NAN if v == 32768 else q[2 * j] + q[2 * j + 1] * (v - (v >> 15) * 65536)
            else:
                x[j] = unpack_from('<f', g, a + 4 * j)[0]
        e = infer(m, x, y)
        p[o] = e
        for j in range(do):
            pack_into('<f', p, o + 1 + 4 * j, 0.0 if e else y[j])
        o += r
        a += w
    return k | (k * r) << 8


NAN = float('nan')
INF = float('inf')


def msg(S, h, _=0):
    # the msg kernel's twin (firmware/asm/fwfmsg.py): HELLO, STATS, QSCALE,
    # UP_DATA, PULL, TRAIN for the message in S[9]; 1 | wire length << 4, or 4
    n = S[7]
    b = n & 63
    n >>= 16
    g = S[9]
    p = S[10]
    M = S[14]
    B = S[32]
    e = 0
    if b == 1:
        if M:
            M.q = None
        pack_into('<BBBBBBII', p, 2, 1, (S[39] & 255) | (1 if M else 0), M.d_in if M else 0,
                  M.d_out if M else 0, M.k if M else 0, 0, M.crc if M else 0, h)
        pack_into('<HHH', p, 16, S[38] & 0xFFFF, S[13] >> 16, S[38] >> 16)
        k = S[39] >> 8
        for i in range(k):
            p[22 + i] = S[37][i]
        k += 20
    elif b == 2:
        for i in range(11):
            pack_into('<I', p, 2 + 4 * i, (S[22 + i] if i < 9 else h if i < 10 else S[31])
                      & 0xFFFFFFFF)
        k = 44
    elif b == 3:
        if not M:
            e = 3
        elif n != 8 * M.d_in:
            e = 2
        else:
            M.q = unpack_from('<%df' % (2 * M.d_in), g, 0)
            k = 0
    elif b == 0x11:
        u = S[34]
        n -= 4
        if not u or n < 0 or unpack_from('<I', g, 0)[0] != S[36]:
            e = 9
        elif S[36] + n > S[35]:
            e = 2
        else:
            for i in range(n):
                u[S[36] + i] = g[4 + i]
            S[36] += n
            k = 0
    elif b == 0x13:
        if n != 6:
            e = 2
        elif not B:
            e = 3
        else:
            o, k = unpack_from('<IH', g, 0)
            k = max(0, min(k, (S[38] >> 16) - 8, S[33] - o))
            pack_into('<I', p, 2, S[33])
            for i in range(4):
                p[6 + i] = B[S[33] - 4 + i]
            for i in range(k):
                p[10 + i] = B[o + i]
            k += 8
    elif b == 0x20:
        if not M:
            e = 3
        else:
            p[0] = n & 255
            p[1] = n >> 8
            k = S[20](M, g, p)
            if k < 0:
                e = 2
            else:
                b = 0x20
    else:
        return 4
    if e:
        S[25] += 1
        p[2] = e
        p[3] = b
        b = 0x7F
        k = 2
    p[0] = 0x80 | b
    p[1] = (S[7] >> 8) & 255
    S[6] = S[17](S[11], p, k + 2)
    return 1 | S[6] << 4


def install(me, b):
    # a model for the plain kernels (fwd, fwupcp): the handle is a Model
    T = Model()
    if load(T, b, len(b) - 4):
        return 7
    T.R = me.R
    T.b = b
    me.m = (T, b)
    S = me.S
    S[14] = T
    S[32] = b
    S[33] = len(b)
    return 0


def trn(m, g, p):
    # TRAIN, the twin of firmware/asm/fwftrn.py (the same rule, in floats):
    # n = p[0] | p[1] << 8 message bytes at g (flags u8, mu f32, samples of
    # d_in raw + d_out target f32) -> p[2:] used u16, bad u16, d_out SSE f32;
    # the length, or -2. The parameters change in the .ndm bytes m.b; the
    # parsed model is read from them again afterwards, with the CRC trailer
    # renewed.
    B = m.b
    d, e, k = B[6], B[7], B[8]
    w = 4 * (d + e)
    n = (p[0] | (p[1] << 8)) - 5
    if n < 0 or n % w:
        return -2
    mu = unpack_from('<f', g, 1)[0] or 0.5
    o = array('i', [0] * (k + 1))  # offset of each atom's c, then of the bias
    q = 10 + 8 * d
    for a in range(k):
        o[a] = q + 1 + 2 * B[q]
        q = o[a] + 4 + 4 * e
    o[k] = q
    u = r = 0
    ss = [0.0] * e
    v = array('f', [0.0] * (d + e))
    y = array('f', [0.0] * e)
    ph = array('f', [0.0] * max(k, 1))
    for s in range(5, 5 + n, w):
        for j in range(d + e):
            v[j] = unpack_from('<f', g, s + 4 * j)[0]
        if not _phi(B, o, v, y, ph):
            r += 1
            continue
        u += 1
        for i in range(e):
            ss[i] += y[i] * y[i]
        if not g[0] & 1:
            _step(B, o, ph, y, mu)
    pack_into('<HH', p, 2, u, r)
    for i in range(e):
        _pf(p, 6 + 4 * i, ss[i])
    if u and not g[0] & 1:
        _reparse(m, B)
    return 4 + 4 * e


def _f(B, o):
    return unpack_from('<f', B, o)[0]


def _pf(B, o, x):
    # x as float32 at B[o]: beyond its range an infinity, as MicroPython and
    # the Thumb kernel store it (CPython's struct refuses it)
    if x > 3.4028234e38:
        x = INF
    elif x < -3.4028234e38:
        x = -INF
    pack_into('<f', B, o, x)


def _phi(B, o, v, y, ph):
    # phi_k and the errors y = prediction - target of raw v (then targets),
    # from the .ndm bytes; False if a mapped input is <= 0, NaN or inf
    d, e, k = B[6], B[7], B[8]
    x = [0.0] * d
    for j in range(d):
        x[j] = _f(B, 14 + 8 * j) * (v[j] - _f(B, 10 + 8 * j))
        if not 0.0 < x[j] < 3.5e38:
            return False
    for i in range(e):
        y[i] = _f(B, o[k] + 4 * i) - v[d + i]
    q = 10 + 8 * d
    for a in range(k):
        t = exp(_f(B, o[a]))
        for z in range(B[q]):
            j = B[q + 1 + 2 * z]
            c = B[q + 2 + 2 * z]
            h = x[j] if c in (1, 255) else x[j] * x[j]
            t = t / h if c > 127 else t * h
        q = o[a] + 4 + 4 * e
        ph[a] = t
        for i in range(e):
            y[i] += _f(B, o[a] + 4 + 4 * i) * t
    return True


def _step(B, o, ph, y, mu):
    # one normalised-LMS step on c, a, b (exponents fixed), in place
    e, k = B[7], B[8]
    n = 1.0
    for a in range(k):
        q = 1.0
        for i in range(e):
            q += _f(B, o[a] + 4 + 4 * i) ** 2
        n += ph[a] * ph[a] * q
    r = mu / n
    for a in range(k):
        t = 0.0
        for i in range(e):
            z = o[a] + 4 + 4 * i
            c = _f(B, z)
            t += y[i] * c
            _pf(B, z, c - r * y[i] * ph[a])
        c = _f(B, o[a]) - r * t * ph[a]
        if -80 < c < 80:
            pack_into('<f', B, o[a], c)
    for i in range(e):
        _pf(B, o[k] + 4 * i, _f(B, o[k] + 4 * i) - r * y[i])


def _reparse(m, B):
    # the parsed model from the trained bytes (CRC not checked: not renewed yet)
    s = array('I', [0])
    crc32(B, len(B) - 4, s)
    pack_into('<I', B, len(B) - 4, s[0])
    load(m, B, len(B) - 4)
