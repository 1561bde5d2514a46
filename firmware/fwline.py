# One-shot setup of fwdisp.run(), second part (after fwboot.py, before
# fwwire.py): the line (fwcfg.IO: "uart" = microbit.uart at fwcfg.BAUD,
# REPL detached; "stdin" = sys.stdin/stdout.buffer on ESP32, RP2040,
# pyboard, mpy-wasm). Run from its file and dropped after (fwdisp.lazy).
# No function defined here may outlive the setup (it would keep this
# file's code in the heap): the writer is fwlink.out.


def line(S, rd, wr):
    crc16, decode, encode, scan, copy, F, ticks_us, ticks_diff, mem_free, M, IO, BOARD, T = S
    try:
        from fwcfg import BAUD
    except ImportError:
        BAUD = 0
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
