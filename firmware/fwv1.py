# Boot of the micro:bit V1, first part (fwd.run, where fwxa.F found
# fwk.bin): every long-lived buffer at once, before anything else is
# compiled, so the parse trees of later files find the rest of the heap in
# one piece (fwd compiles fwv1b and fwv1m before this runs): me.raw the
# arena of the line's and the engine's buffers (its layout: wir in
# asm/fwfins.py), me.S the engine's state, me.lb the line's read buffer,
# me.m the model's buffers, sized from the newer slot's header (fwv1m
# fills them; the table T is a bytearray: array('i', [0] * n) would need a
# list as large first). Run from this file (fwd.lazy).
from array import array


def do(me, k):
    # no collection first: the allocations then follow each other above the
    # compiled files (freed after the boot), the model's first, so that
    # dropping it for an upload (fwd) frees one piece with those files' room
    h = [slot(i) for i in (0, 1)]
    i = 1 if not h[0] or (h[1] and (h[1][0] - h[0][0]) & 255 < 128) else 0
    h = h[i]
    me.K, me.G = i, h[0] if h else 0
    h = h if k else None  # k = 0: upload mode, no model
    me.m = (bytearray(h[1] if h else 0),
            bytearray(4 * (44 + 4 * h[2] + 4 * h[3] + (h[2] if h[2] > 31 else 0)) if h else 0))
    me.raw = bytearray(640)
    me.S = array('i', [0] * 40)
    me.lb = bytearray(64)


def slot(i):
    # (gen, length, d_in, k) from the header of slot i (fwslot's layout)
    try:
        f = open("ndm_" + "ab"[i], "rb")
        h = f.read(12)
        f.close()
        return h[0], h[1] | h[2] << 8, h[9], h[11]
    except Exception:
        return None
