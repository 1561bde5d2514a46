# The model on the board: .ndm loader (layout: host/neurondyn/ndm.py) and
# forward pass x_j = s_j*(r_j - o_j), phi_k = e^c_k * prod_j x_j^w_kj,
# y = b + sum_k a_k*phi_k; gains e^c precomputed, no log/exp at inference.
# PATH "asm": Thumb kernels (fwfast..fwfval), fixed point, no allocation per
# call; "plain": fwplain in MicroPython floats. Both use the same arrays.
# Kept small: on the micro:bit V1 every line of Python costs ~30 B of heap.
from array import array
from math import exp
from struct import unpack_from

E_BAD_INPUT = 5
E_BAD_MODEL = 7
try:
    import fwfch
    PATH = "asm"
except (ImportError, SyntaxError):
    PATH = "plain"
# The other kernels (fwfval fwfast fwfastb fwfat fwfro) are imported where
# used; main.py must import them all, and fwfch, before this module: the V1
# compiles sources on import and fails on a fragmented heap or deep stack.


def crc(b, n, s=None):
    # CRC-32 (zlib) of the bytearray b[:n]; s = array('I', [crc]) continues
    # a running CRC (fwstore streams its slots through it)
    s = s or array('I', [0])
    if PATH == "asm":
        import fwfastb
        fwfastb.crc32(b, n, s)
    else:
        import fwplain
        fwplain.crc32(b, n, s)
    return s[0]


class Model:
    # d_in, d_out, k, crc (the .ndm CRC-32 trailer = model hash) once loaded
    d_in = d_out = k = 0
    crc = None

    def load(self, b):
        # 0 or E_BAD_MODEL (CRC, header, bounds, values, not quantised);
        # a MemoryError propagates to the caller
        if not isinstance(b, bytearray):
            b = bytearray(b)
        if PATH != "asm":
            import fwplain
            return fwplain.load(self, b, len(b) - 4)
        import fwfast
        import fwfastb
        import fwfval
        import fwfat
        import fwfro
        n = len(b) - 4
        if n < 10 or b[:5] != b'NDYN\x01' or b[5] not in (1, 3) or b[9]:
            return E_BAD_MODEL
        if not b[6] or not b[7] or crc(b, n) != unpack_from('<I', b, n)[0]:
            return E_BAD_MODEL
        di, do, k = b[6], b[7], b[8]
        z = [0.0]
        m = (array('f', z * 2 * di), 0, array('f', z * k), array('f', z * k * do),
             array('f', z * do), array('i', [0] * 2 * (di + k)))
        T = array('i', [0] * 32)
        for i in range(6):
            T[4 + i] = fwfast.addr(m[i])
        T[3] = T[4]
        T[4] += 4
        fwfast.lib(T)
        fwfastb.lib(T)
        if fwfval.val(T, b, n):
            return E_BAD_MODEL
        f = bytearray(T[14])
        T[5] = fwfast.addr(f)
        fwfval.val(T, b, n)
        g = m[2]
        for i in range(k):
            g[i] = exp(g[i])
            if not g[i] < 3.4e38:
                return E_BAD_MODEL
        self.T, self.m, self.f, self.at, self.ro = T, m, f, fwfat.at, fwfro.ro
        self.d_in, self.d_out, self.k, self.crc = di, do, k, unpack_from('<I', b, n)[0]
        return 0

    def infer(self, r, y):
        # r: array('f') of d_in raw values, y: array('f') of d_out (written
        # only on success) -> 0 or E_BAD_INPUT. No allocation.
        T = self.T
        if fwfch.ch(T, r):
            return E_BAD_INPUT
        self.at(T)
        self.ro(T, y)
        return 0
