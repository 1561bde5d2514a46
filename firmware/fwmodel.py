# The model on the board: .ndm loader (layout: host/neurondyn/ndm.py) and
# forward pass x_j = s_j*(r_j - o_j), phi_k = e^c_k * prod_j x_j^w_kj,
# y = b + sum_k a_k*phi_k; gains e^c precomputed, no log/exp at inference.
# PATH "asm": Thumb kernels (fwk, pre-assembled from firmware/asm/), fixed
# point, no allocation per call, parameters read in place from the .ndm;
# main.py imports fwk before this module (the V1 compiles on import and
# fails on a fragmented heap or a deep stack). "plain": fwplain, floats.
# Kept small: on the micro:bit V1 every line of Python costs heap; the
# asm loader is fwmload.py, run only while loading.
from array import array

E_BAD_INPUT = 5
E_BAD_MODEL = 7
LOAD = None
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
        # The asm loader (fwmload.py) runs from its file and is dropped
        # after: it runs once per model, and on the V1 code costs heap while
        # kept (where fwmload is imported, as in tests, LOAD is its load).
        # The plain path (large boards) is fwplain's.
        b = b if isinstance(b, bytearray) else bytearray(b)
        if PATH != "asm":
            import fwplain
            return fwplain.load(self, b, len(b) - 4)
        if LOAD:
            return LOAD(self, b)
        try:
            f = open('fwmload.py')
        except OSError:  # CPython tests: firmware/ is on sys.path
            return __import__('fwmload').load(self, b)
        d = {}
        exec(f.read(), d)
        f.close()
        return d['load'](self, b)

    def infer(self, r, y):
        # r: array('f') of d_in raw values, y: array('f') of d_out (written
        # only on success) -> 0 or E_BAD_INPUT
        return fwk.ch(self.T, r, y)
