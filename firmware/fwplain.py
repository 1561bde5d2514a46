# Plain-MicroPython half of fwmodel: .ndm parser and forward pass in floats,
# for boards without asm_thumb and as the reference the Thumb kernels are
# tested against. Builds the same arrays as the asm path: m.m = (o/s
# interleaved, factors (nnz, index, exponent byte)..., gains, readout, bias).
from array import array
from math import exp
from struct import unpack, unpack_from

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
    m.d_in, m.d_out, m.k, m.crc = di, do, k, c
    m.infer = lambda r, y: infer(m, r, y)


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
