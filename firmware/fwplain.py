# Plain-MicroPython forward pass of fwmodel: the path for boards without
# asm_thumb, and the reference the Thumb kernels are tested against.
E_BAD_INPUT = 5
_T = (0, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
      0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8,
      0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C)


def crc32(buf, n):
    # CRC-32 (zlib) of buf[:n], a nibble table (16 entries, not 256: RAM)
    c = 0xFFFFFFFF
    for i in range(n):
        c ^= buf[i]
        c = (c >> 4) ^ _T[c & 15]
        c = (c >> 4) ^ _T[c & 15]
    return c ^ 0xFFFFFFFF


def infer(m, r, y):
    # same contract as fwmodel.Model.infer; divides once per atom
    o, s, x = m.o, m.s, m.x
    for j in range(m.d_in):
        v = s[j] * (r[j] - o[j])
        if not 0.0 < v < 3.5e38:
            return E_BAD_INPUT
        x[j] = v
    f, g, ph = m.fac, m.g, m.p
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
    A, b, do = m.A, m.b, m.d_out
    for i in range(do):
        acc = b[i]
        q = i
        for a in range(m.k):
            acc += A[q] * ph[a]
            q += do
        y[i] = acc
    return 0
