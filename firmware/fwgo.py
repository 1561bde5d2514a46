# The boot of every board but the micro:bit V1 (fwd.run; the V1's is
# fwv1f, fwv1, fwv1m): the kernels (fwkern), the clock, name and line (fwboot), the
# buffers (fwbufs), the last good model (fwload + fwplain.install); returns
# what fwd.run's loop takes, with fwq, the module of the rarer requests.
# Run from this file and dropped after (fwd.lazy).


def do(me, rd, w):
    L = me.lazy
    L('fwkern')(me)
    r = L('fwboot')(me, rd, w)
    L('fwbufs')(me, *r[7])
    b = L('fwload')(me)
    if b:
        __import__('fwplain').install(me, b)
    return r[:7] + (__import__('fwq'),)
