# The boot of the micro:bit V1, second part (main.py, after fwv1f; this
# file and m = fwv1m.do are compiled before it runs, as no compile fits
# beside the buffers of a large model): every long-lived buffer at once,
# after a collection: the arena of the line's and the engine's buffers
# (its layout: wir in asm/fwfins.py), the engine's state S, the line's
# read buffer and the model's buffers, sized from the newer slot's header
# (m fills them; the table T is a bytearray: array('i', [0] * n) would
# need a list as large first); then the engine's state (the kernel wir),
# HELLO's names, and the model (m), except in upload mode (q: the upload's
# handlers, fwv; no model). Returns what fwd.run's loop takes. Run from
# this file and dropped after (fwd.lazy).
from array import array


def do(me, m, q):
    import gc
    from time import ticks_us, ticks_diff
    k = not q
    h = [slot(i) for i in (0, 1)]
    i = 1 if not h[0] or (h[1] and (h[1][0] - h[0][0]) & 255 < 128) else 0
    h = h[i]
    me.K, me.G = i, h[0] if h else 0
    h = h if k else None
    gc.collect()  # the compiles' garbage first
    me.raw = A = bytearray(640)
    me.S = S = array('i', [0] * 40)
    me.lb = bytearray(64)
    me.m = (bytearray(h[1] if h else 0),
            bytearray(4 * (44 + 4 * h[2] + 4 * h[3] + (h[2] if h[2] > 31 else 0)) if h else 0))
    X, E, d = me.X, me.E, me.g
    X(S, A, me.B, E[18])
    X(A, bytearray(d), 592 | len(d) << 21, E[4])  # HELLO's names
    S[39] |= len(d) << 8
    me.g = A
    me.A0 = X(A, 0, 0, E[8])
    if k:
        m(me)  # installs the model itself
    u = me.P[7]
    return u.readinto, me.lb, ticks_us, ticks_diff, gc.mem_free, gc.collect, 0, q or me


def slot(i):
    # (gen, length, d_in, k) from the header of slot i (fwslot's layout)
    try:
        f = open("ndm_" + "ab"[i], "rb")
        h = f.read(12)
        f.close()
        return h[0], h[1] | h[2] << 8, h[9], h[11]
    except Exception:
        return None
