# One-shot setup of fwd.run() (after fwfind has chosen the kernels): the
# clock, the board's name, the line
# (fwcfg.IO: "uart" = microbit.uart at fwcfg.BAUD, REPL detached; "stdin" =
# sys.stdin/stdout.buffer on ESP32, RP2040, pyboard, mpy-wasm); fwbufs next.
# Run from its file and dropped after (fwd.lazy). No function defined here
# may outlive the setup (it would keep this file's code in the heap).


def do(me, rd, wr):
    try:
        from time import ticks_us, ticks_diff
        import gc
        mf = gc.mem_free
        import micropython as M
        M.kbd_intr(-1)
    except ImportError:  # CPython unit tests
        from fwcobs import ticks_us, ticks_diff, mem_free as mf
        gc = M = None
    try:  # run, not imported: an imported module stays in the V1's heap
        IO, BOARD, BAUD, ID = me.lazy('fwcfg')()
    except ImportError:
        IO, BOARD, BAUD, ID = "stdin", "cpython", 0, b"\x07cpython\x09ndyn-fw 1"
    T = 1  # feeling: TRAIN and PULL, in the msg kernel
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
        me.o = uart
    else:
        import sys
        rd = sys.stdin.buffer.readinto
        me.o = sys.stdout.buffer
    me.wr = wr or me.out
    # mpy-wasm: a collection deep in the call stack traps its VM, so fwd
    # collects at its loop top (1 MB static heap: every 128 KB), the
    # automatic one off; the V1 collects where it needs room. Boards with a
    # heap under 256 KB (ESP32, RP2040, pyboard) keep the automatic one: off,
    # no allocation would ever collect, and f - 128 KB would never be reached
    f = mf()
    lo = 0
    if not U and f > 262144 and gc:
        lo = f // 2 if f > 4000000 else f - 131072
        gc.disable()
    return (rd, bytearray(64 if U else 1), ticks_us, ticks_diff, mf, gc.collect if gc else int, lo,
            (ID, U, mf, M, T, gc))
