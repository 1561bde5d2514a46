# The model on the board: .ndm loader (layout: host/neurondyn/ndm.py) and
# forward pass x_j = s_j*(r_j - o_j), phi_k = e^c_k * prod_j x_j^w_kj,
# y = b + sum_k a_k*phi_k; gains e^c precomputed, no log/exp at inference.
# PATH "asm": Thumb kernels (fwk, pre-assembled from firmware/asm/), fixed
# point, no allocation per call, parameters read in place from the .ndm;
# main.py imports fwk before this module (the V1 compiles on import and
# fails on a fragmented heap or a deep stack). "plain": fwplain, floats.
# Kept small: on the micro:bit V1 every line of Python costs heap.
from array import array
from math import exp
from struct import unpack_from

E_BAD_INPUT = 5
E_BAD_MODEL = 7
try:
    import fwk
    PATH = "asm"
except (ImportError, SyntaxError):
    PATH = "plain"


def crc(b, n, s=None):
    # CRC-32 (zlib) of bytearray b[:n]; s = array('I', [crc]) continues one
    s = s or array('I', [0])
    if PATH == "asm":
        fwk.crc32(b, n, s)
    else:
        import fwplain
        fwplain.crc32(b, n, s)
    return s[0]


class Model:
    # d_in, d_out, k and crc (the .ndm CRC-32 trailer, the model hash)
    d_in = d_out = k = 0
    crc = None

    def load(self, b):
        # 0 or E_BAD_MODEL (CRC, header, bounds, values, not quantised); a
        # MemoryError propagates. The asm path keeps b (do not modify it).
        if not isinstance(b, bytearray):
            b = bytearray(b)
        n = len(b) - 4
        if PATH != "asm":
            import fwplain
            return fwplain.load(self, b, n)
        c = unpack_from('<I', b, n)[0] if n > 9 else 0
        if n < 10 or crc(b, n) != c:
            return E_BAD_MODEL
        k = b[8]
        g = array('f', [0.0] * k)
        T = array('i', [0] * (32 + 2 * b[6] + 3 * k))
        fwk.liba(T)
        fwk.libb(T)
        T[30], T[31] = fwk.code(fwk.at), fwk.code(fwk.ro)
        if fwk.val(T, b, n, g):
            return E_BAD_MODEL
        for i in range(k):
            g[i] = exp(g[i])
        if k and not max(g) < 3.4e38:
            return E_BAD_MODEL
        self.T, self.b, self.g, self.k, self.crc = T, b, g, k, c
        self.d_in, self.d_out = b[6], b[7]
        return 0

    def infer(self, r, y):
        # r: array('f') of d_in raw values, y: array('f') of d_out (written
        # only on success) -> 0 or E_BAD_INPUT
        return fwk.ch(self.T, r, y)
