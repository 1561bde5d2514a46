# Board services for the protocol, one module to save heap on the V1 (~350 B
# a module there): the frame kernels (fwcasm's asm_thumb ones when the build
# has them, else fwcobs' plain Python: identical bytes), the byte I/O backend
# chosen by fwcfg.IO ("uart" = microbit.uart, "stdin" = sys.stdin/stdout.buffer
# for ESP32, RP2040, pyboard, mpy-wasm) and the microsecond clock.
# rd(buf) -> count read into buf (0/None: nothing yet); wr(buf, n) sends buf[0:n].
try:
    from fwcasm import crc16, decode, encode, scan, copy
    FAST = True
except (ImportError, SyntaxError, AttributeError, NameError):
    from fwcobs import crc16, decode, encode, scan, copy
    FAST = False
try:
    from time import ticks_us, ticks_diff
    from gc import mem_free
except ImportError:  # CPython unit tests
    from fwcobs import ticks_us, ticks_diff, mem_free
try:
    from fwcfg import IO, BAUD, BOARD
except ImportError:
    IO = "stdin"
    BAUD = 115200
    BOARD = "cpython"

U = IO == "uart"
# the V1's UART ring buffer holds 64 bytes: host frames <= 60 wire bytes
CH = 64 if U else 1
WMAX = 60 if U else 260
PMAX = 53 if U else 250
MMAX = 244 if U else 1024
RMAX = 200 if U else 250
rd = wr = None


def collect():
    # Only where RAM is scarce (the V1). On the MicroPython WASI build (mpy-wasm)
    # a collection deep in the call stack traps the VM; there fwdisp's serving
    # loop collects at its top instead, with the automatic collection disabled.
    if U:
        import gc
        gc.collect()


def start():
    # take the line; binary frames must not raise KeyboardInterrupt (0x03)
    global rd, wr
    import micropython
    micropython.kbd_intr(-1)
    if U:
        from microbit import uart
        uart.init(BAUD)
        rd = uart.readinto

        def wr(b, n):
            uart.write(b[:n])
    else:
        import sys
        rd = sys.stdin.buffer.readinto
        o = sys.stdout.buffer

        def wr(b, n):
            o.write(b[:n])


def leave():
    # give the line back to the REPL (for re-flashing)
    import micropython
    micropython.kbd_intr(3)
    if U:
        from microbit import uart
        uart.init(115200)
