# The model on the board: .ndm loader (layout: host/neurondyn/ndm.py) and the
# forward pass  x_j = s_j*(r_j - o_j),  phi_k = e^c_k * prod_j x_j^w_kj,
# y = b + sum_k a_k*phi_k  with no log/exp at inference (gains precomputed).
# Two paths, same arrays: "asm" (Thumb kernels, fixed point, no allocation)
# where asm_thumb exists, else "plain" MicroPython floats. PATH says which.
from array import array
import math
import struct

E_BAD_INPUT = 5
E_BAD_MODEL = 7
try:
    import fwfast
    import fwfastb
    import fwfch
    import fwfat
    import fwfro
    PATH = "asm"
except (ImportError, SyntaxError):
    PATH = "plain"


def _crc(b, n):
    # CRC-32 (zlib) of b[:n]: a Thumb loop, or ~60 ms of Python on the V1
    if PATH == "asm":
        return fwfastb.crc32(b, n) & 0xFFFFFFFF
    import fwplain
    return fwplain.crc32(b, n)


class Bad(Exception):
    pass


class Model:
    def __init__(self, path=None):
        self.path = path or PATH
        self.d_in = self.d_out = self.k = 0
        self.crc = None

    def load(self, buf):
        # 0, or E_BAD_MODEL for anything wrong (MemoryError propagates)
        if not isinstance(buf, bytearray):
            buf = bytearray(buf)
        try:
            self._parse(buf, len(buf))
        except (Bad, IndexError, ValueError):
            self.d_in = self.d_out = self.k = 0
            self.crc = None
            return E_BAD_MODEL
        return 0

    def _f(self, b, p, n, a, i):
        # n float32 at b[p:] into a[i:]; refuse NaN/inf (exponent all ones)
        for i in range(i, i + n):
            if b[p + 3] & 0x7F == 0x7F and b[p + 2] & 0x80:
                raise Bad()
            a[i] = struct.unpack_from('<f', b, p)[0]
            p += 4
        return p

    def _parse(self, b, n):
        if n < 14 or b[0:4] != b'NDYN' or b[4] != 1 or b[5] & 0xFC or b[9]:
            raise Bad()
        if not b[5] & 1 or _crc(b, n - 4) != struct.unpack_from('<I', b, n - 4)[0]:
            raise Bad()
        di, do, k = b[6], b[7], b[8]
        if not di or not do:
            raise Bad()
        z = [0.0]
        o = array('f', z * di)
        s = array('f', z * di)
        p = 10
        for j in range(di):
            p = self._f(b, p, 1, o, j)
            p = self._f(b, p, 1, s, j)
            if s[j] == 0:
                raise Bad()
        fac = bytearray()
        g = array('f', z * k)
        A = array('f', z * (k * do))
        for a in range(k):
            nz = b[p]
            if nz > di:
                raise Bad()
            fac.append(nz)
            last = -1
            for t in range(nz):
                j, e = b[p + 1 + 2 * t], b[p + 2 + 2 * t]
                if j >= di or j <= last or e not in (1, 2, 254, 255):
                    raise Bad()
                last = j
                fac.append(j)
                fac.append(e)
            p = self._f(b, p + 1 + 2 * nz, 1, g, a)
            g[a] = math.exp(g[a])
            if not g[a] < 3.4e38:
                raise Bad()
            p = self._f(b, p, do, A, a * do)
        bias = array('f', z * do)
        p = self._f(b, p, do, bias, 0)
        if b[5] & 2:
            p += 2 + (b[p] | b[p + 1] << 8)
        if p != n - 4:
            raise Bad()
        self.o, self.s, self.fac, self.g, self.A, self.b = o, s, fac, g, A, bias
        self.d_in, self.d_out, self.k = di, do, k
        self.crc = struct.unpack_from('<I', b, n - 4)[0]
        if self.path == "asm":
            T = self.T = array('i', [0] * 32)
            self.W = array('i', [0] * (2 * (di + k)))
            T[0], T[1], T[2] = di, do, k
            for i, v in enumerate((o, s, fac, g, A, bias, self.W)):
                T[3 + i] = fwfast.addr(v)
            fwfast.lib(T)
            fwfastb.lib(T)
        else:
            self.x = array('f', [0.0] * di)
            self.p = array('f', [0.0] * max(k, 1))
            import fwplain
            self.infer = lambda r, y: fwplain.infer(self, r, y)

    def infer(self, r, y):
        # r: array('f') of d_in raw values; y: array('f') of d_out, written
        # only on success; returns 0 or E_BAD_INPUT. No allocation (asm path).
        T = self.T
        if fwfch.ch(T, r):
            return E_BAD_INPUT
        fwfat.at(T)
        fwfro.ro(T, y)
        return 0
