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
    import fwfast
    import fwfastb
    import fwfat
    import fwfro
    import fwfval
    PATH = "asm"
except (ImportError, SyntaxError):
    PATH = "plain"
# main.py must import these kernels before this module: nested imports
# overflow the V1's stack while compiling


def crc(b, n):
    # CRC-32 (zlib) of the bytearray b[:n] (fwstore checks its slots with it)
    if PATH == "asm":
        return fwfastb.crc32(b, n) & 0xFFFFFFFF
    import fwplain
    return fwplain.crc32(b, n)


class Model:
    def __init__(self, path=None):
        self.path = path or PATH
        self.d_in = self.d_out = self.k = 0
        self.crc = None

    def load(self, b):
        # 0, or E_BAD_MODEL (CRC, bounds, values, not quantised); a
        # MemoryError propagates to the caller
        if not isinstance(b, bytearray):
            b = bytearray(b)
        n = len(b) - 4
        self.d_in = self.d_out = self.k = 0
        self.crc = None
        if self.path != "asm":
            import fwplain
            return fwplain.load(self, b, n)
        self.at, self.ro = fwfat.at, fwfro.ro
        if n < 10:
            return E_BAD_MODEL
        di, do, k = b[6], b[7], b[8]
        c = unpack_from('<I', b, n)[0]
        if b[:5] != b'NDYN\x01' or b[5] not in (1, 3) or b[9]:
            return E_BAD_MODEL
        if not di or not do or crc(b, n) != c:
            return E_BAD_MODEL
        f = bytearray()
        p = 10 + 8 * di
        for a in range(k):
            if p >= n:
                return E_BAD_MODEL
            q = p + 1 + 2 * b[p]
            f += b[p:q]
            p = q + 4 + 4 * do
        z = [0.0]
        g = array('f', z * k)
        o = array('f', z * (2 * di))
        A = array('f', z * (k * do))
        y = array('f', z * do)
        W = array('i', [0] * (2 * di + 2 * k))
        m = (o, f, g, A, y, W)
        T = array('i', [0] * 32)
        T[0], T[1], T[2] = di, do, k
        for i in range(6):
            T[4 + i] = fwfast.addr(m[i])
        T[3] = T[4]
        T[4] += 4
        if fwfval.val(T, b, n):
            return E_BAD_MODEL
        for a in range(k):
            g[a] = exp(g[a])
            if not g[a] < 3.4e38:
                return E_BAD_MODEL
        fwfast.lib(T)
        fwfastb.lib(T)
        self.T, self.m = T, m
        self.d_in, self.d_out, self.k, self.crc = di, do, k, c
        return 0

    def infer(self, r, y):
        # r: array('f') of d_in raw values, y: array('f') of d_out (written
        # only on success) -> 0 or E_BAD_INPUT
        T = self.T
        if fwfch.ch(T, r):
            return E_BAD_INPUT
        self.at(T)
        self.ro(T, y)
        return 0
