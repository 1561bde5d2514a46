# The boot of the micro:bit V1, first part (main.py): fwk.bin found in
# flash and checked (fwxa.F), the Thumb kernels' entries in it (me.E), the
# line (microbit.uart at fwcfg's baud, the REPL detached), me.P (see
# fwbufs); HELLO's names left in me.g for fwv1. Run from this file and
# dropped after (fwd.lazy), between the compiles of fwv1m and fwv1.


def do(me):
    import gc
    import micropython as M
    from fwxa import X, P, F
    from microbit import uart
    a = F(0x30000)
    if not a:
        raise OSError('fwk.bin')
    me.E = tuple(a + P(a + 20 + 2 * i) + 1 for i in range(P(a + 14)))
    i, c, b, me.g = me.lazy('fwcfg')()
    uart.init(b)
    M.kbd_intr(-1)
    me.A, me.X, me.B, me.o, me.wr, me.R = 2, X, a, uart, me.outa, 100
    me.RAW, me.G0 = 368, 124
    me.P = (2, 53, 244, 100, None, gc.mem_free, M, uart, 1, gc.collect)
