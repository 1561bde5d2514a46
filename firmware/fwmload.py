# fwmodel.Model.load for the asm path, run from this file only while a model
# loads and dropped after (the V1 keeps every imported line in its small
# heap; where this module is imported instead, fwmodel.LOAD points here).
# Header, bounds and values checked by the Thumb validator (fwk.val), the
# parameters stay in place in the .ndm bytes b, gains e^c computed here.
# 0 or E_BAD_MODEL (7).
from array import array
from math import exp
from struct import unpack_from
import fwk
import fwmodel


def load(m, b):
    n = len(b) - 4
    c = unpack_from('<I', b, n)[0] if n > 9 else 0
    if n < 10 or fwmodel.crc(b, n) != c:
        return 7
    k = b[8]
    g = array('f', [0.0] * k)
    T = array('i', [0] * (32 + 2 * b[6] + 3 * k))
    fwk.liba(T)
    fwk.libb(T)
    T[30], T[31] = fwk.code(fwk.at), fwk.code(fwk.ro)
    if fwk.val(T, b, n, g):
        return 7
    for i in range(k):
        g[i] = exp(g[i])
    if k and not max(g) < 3.4e38:
        return 7
    m.T, m.b, m.g, m.k, m.crc = T, b, g, k, c
    m.d_in, m.d_out = b[6], b[7]
    return 0


fwmodel.LOAD = load
