# The model on the board: .ndm loader (layout: host/neurondyn/ndm.py) and
# forward pass x_j = s_j*(r_j - o_j), phi_k = e^c_k * prod_j x_j^w_kj,
# y = b + sum_k a_k*phi_k; gains e^c precomputed, no log/exp at inference.
# PATH "asm": Thumb kernels (fwfast..fwfval), fixed point, no allocation per
# call, parameters read in place from the .ndm; "plain": fwplain in
# MicroPython floats on arrays parsed from it.
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
        # a MemoryError propagates to the caller. The asm path keeps b (a
        # bytearray: do not modify it afterwards) and reads the parameters
        # in place: no copies on a 16 KB board.
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
        di, k = b[6], b[8]
        g = array('f', [0.0] * k)
        W = array('i', [0] * (2 * di + 3 * k))
        T = array('i', [0] * 32)
        a = fwfast.addr(b)
        T[3], T[4], T[5] = a + 10, a + 14, a + 10 + 8 * di
        T[6], T[9] = fwfast.addr(g), fwfast.addr(W)
        fwfast.lib(T)
        fwfastb.lib(T)
        if fwfval.val(T, b, n):
            return E_BAD_MODEL
        for i in range(k):
            g[i] = exp(g[i])
            if not g[i] < 3.4e38:
                return E_BAD_MODEL
        self.T, self.b, self.g, self.W, self.at, self.ro = T, b, g, W, fwfat.at, fwfro.ro
        self.d_in, self.d_out, self.k, self.crc = di, b[7], k, unpack_from('<I', b, n)[0]
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
