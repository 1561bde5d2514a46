# One-shot setup of fwdisp.run(), first half: the kernels (fwkl's Thumb ones
# where the build has asm_thumb, else fwcobs' plain Python: the same
# bytes), the clock and the line (fwcfg.IO: "uart" = microbit.uart at
# fwcfg.BAUD, REPL detached; "stdin" = sys.stdin/stdout.buffer on ESP32,
# RP2040, pyboard, mpy-wasm). Run from its file and dropped after (see
# fwdisp.lazy); fwwire.py, the second half, allocates the buffers. Two
# files, not one: the V1 parses a whole file at once and has no room to
# parse both halves together. No function defined here may outlive the
# setup (it would keep this module's code in the heap): the writer is
# fwlink.out.


def setup(me, rd, wr):
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
    import fwlink
    U = None
    if rd:
        pass
    elif IO == "uart":
        from microbit import uart
        U = uart
        uart.init(BAUD)
        if M:
            M.kbd_intr(-1)
        rd = uart.readinto
        fwlink.o = uart
    else:
        import sys
        rd = sys.stdin.buffer.readinto
        fwlink.o = sys.stdout.buffer
    return (crc16, decode, encode, scan, copy, F, ticks_us, ticks_diff, mem_free,
            M, U, IO, BOARD, T, rd, wr or fwlink.out)
