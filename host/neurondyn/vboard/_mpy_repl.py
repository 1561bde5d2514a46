# Board-side stand-in for the C REPL of a "plain MicroPython" ESP32 / RP2040 /
# pyboard, for the mpy-wasm virtual board: the WASI port's own REPL has no raw
# mode. It speaks the raw-REPL protocol mpremote uses (Ctrl-A raw mode, Ctrl-B
# friendly, Ctrl-C clear, Ctrl-D run / soft reboot; raw-paste refused with
# "R\x00" so mpremote falls back to plain raw mode) over sys.stdin/stdout.buffer,
# and on a soft reboot runs main.py like a board does. Runs in MicroPython.
import sys
import io

rd = sys.stdin.buffer
wr = sys.stdout.buffer


def byte():
    c = rd.read(1)
    if not c:
        raise SystemExit(0)
    return c[0]


def run_main():
    try:
        f = open("main.py")
    except OSError:
        return
    src = f.read()
    f.close()
    try:
        exec(src, {"__name__": "__main__"})
    except Exception as e:
        sys.print_exception(e)


def raw():
    wr.write(b"raw REPL; CTRL-B to exit\r\n>")
    g = {"__name__": "__main__"}
    buf = bytearray()
    while True:
        c = byte()
        if c == 1:
            buf = bytearray()
            wr.write(b"\r\nraw REPL; CTRL-B to exit\r\n>")
        elif c == 2:
            wr.write(b"\r\n")
            return False
        elif c == 3:
            buf = bytearray()
        elif c == 5 and not buf:
            byte()              # 'A'
            byte()              # 0x01
            wr.write(b"R\x00")  # raw-paste understood, not supported
        elif c == 4:
            if not buf:
                wr.write(b"OK\r\nsoft reboot\r\n")
                return True
            wr.write(b"OK")
            err = io.StringIO()
            src = bytes(buf)
            try:
                exec(src, g)
            except BaseException as e:
                sys.print_exception(e, err)
            wr.write(b"\x04" + err.getvalue().encode() + b"\x04>")
            buf = bytearray()
        else:
            buf.append(c)


def friendly():
    wr.write(b"MicroPython (ndyn raw-REPL stand-in)\r\n>>> ")
    while True:
        c = byte()
        if c == 1:
            if raw():
                return
            wr.write(b">>> ")
        elif c == 3:
            wr.write(b"\r\n>>> ")
        elif c == 4:
            wr.write(b"soft reboot\r\n")
            return


while True:
    run_main()
    friendly()
