# One-shot setup of fwdisp.run(): run from its file and dropped after (see
# fwdisp.lazy), so none of this code stays in the V1's heap. Chooses the
# kernels (fwkl's Thumb ones where the build has asm_thumb, else fwcobs'
# plain Python: the same bytes), the clock, the line (fwcfg.IO: "uart" =
# microbit.uart at fwcfg.BAUD, REPL detached; "stdin" = sys.stdin/stdout
# .buffer on ESP32, RP2040, pyboard, mpy-wasm) and the limits of
# docs/protocol.md 3, allocates the buffers once and loads the last good
# model from the slot.


def setup(me, rd, wr):
    import gc
    try:
        from fwkl import crc16, decode, encode, scan, copy
        F = 2
    except Exception:
        from fwcobs import crc16, decode, encode, scan, copy
        F = 0
    try:
        from time import ticks_us, ticks_diff
        from gc import mem_free
        import micropython as M
        M.kbd_intr(-1)
    except ImportError:  # CPython unit tests
        from fwcobs import ticks_us, ticks_diff, mem_free
        M = None
    try:
        from fwcfg import IO, BOARD, BAUD
    except ImportError:
        IO, BOARD, BAUD = "stdin", "cpython", 0
    try:  # feeling (fwtrain) where the image ships it, imported when used
        open('fwtrain.py').close()
        T = 1
    except OSError:
        try:
            __import__('fwtrain')
            T = 1
        except ImportError:
            T = 0
    U = None
    # V1: 64-byte UART ring buffer, so host frames <= 60 wire bytes; a
    # 100-byte reply holds two 30 -> 12 samples. Others: larger buffers.
    W, PM, MM, R = (60, 53, 244, 100) if IO == "uart" else (260, 250, 1024, 250)
    if rd:
        pass
    elif IO == "uart":
        from microbit import uart
        U = uart
        uart.init(BAUD)
        if M:
            M.kbd_intr(-1)
        rd = uart.readinto

        def wr(b, n):
            uart.write(b[:n])
    else:
        import sys
        rd = sys.stdin.buffer.readinto
        o = sys.stdout.buffer

        def wr(b, n):
            o.write(b[:n])
    # K[3] collects where the V1 needs room; K[4] only at fwdisp's loop top
    # K[3] collects where the V1 needs room; K[4] only at fwdisp's loop top
    me.K = (crc16, encode, wr, gc.collect if U else int, gc.collect)
    me.raw = bytearray(R + 4)
    me.tx = bytearray(R + 10)
    me.g = bytearray(MM)
    me.st = [0] * 11
    ID = bytearray(chr(len(BOARD)) + BOARD + "\x09ndyn-fw 1", "utf-8")
    me.P = (F, PM, MM, R, ID, mem_free, M, U)
    import fwlink
    import fwinfer
    fwlink.rd, fwlink.wr, fwlink.crc16, fwlink.decode, fwlink.encode, fwlink.scan = (
        rd, wr, crc16, decode, encode, scan)
    fwlink.st = me.st
    fwlink.W = W
    fwlink.rx = bytearray(W + (64 if U else 1))
    fwlink.ch = bytearray(64 if U else 1)
    fwlink.p = fwlink.s0 = fwlink.n0 = fwlink.ov = 0
    fwinfer.copy, fwinfer.tu, fwinfer.td, fwinfer.R = copy, ticks_us, ticks_diff, R
    me.restore()
    me.K[3]()  # (not on mpy-wasm: a collection deep in the call stack traps it)
    f = mem_free()
    # mpy-wasm: a collection deep in the call stack traps its VM, so fwdisp
    # collects at its loop top (1 MB static heap: every 128 KB), the
    # automatic one off; the V1 collects where it needs room
    lo = 0
    if not U and f:
        lo = f // 2 if f > 4000000 else f - 131072
        gc.disable()
    return ticks_us, ticks_diff, mem_free, copy, MM, T, lo
