"""A minimal raw-REPL client that works on MicroPython 1.9.2 (micro:bit V1) and later.

mpremote's own client expects a newer MicroPython (raw-paste mode, ``os.stat``);
the micro:bit V1 has neither, and its UART drops bytes past a 64-byte input
buffer. So this client writes code in small paced chunks and reads with
blocking, timed reads (pyserial's ``in_waiting`` can say 0 on a pty while data
waits). It is used by the test harness and by ``ndyn flash`` on the micro:bit.
"""
from __future__ import annotations

import time

CHUNK = 32            # bytes per write: half the micro:bit's 64-byte UART buffer
CHUNK_PAUSE = 0.01    # seconds between chunks (32 bytes take ~2.8 ms at 115200 baud)
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"


class ReplError(RuntimeError):
    """The board raised an exception while running a script; carries both streams."""

    def __init__(self, stdout: str, stderr: str):
        self.stdout = stdout
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "error"
        super().__init__("board raised: %s" % last)


class Reader:
    """Timed reads from a serial port that keep whatever arrived past a terminator."""

    def __init__(self, ser):
        self.ser = ser
        self.pending = bytearray()

    def discard(self) -> None:
        self.pending = bytearray()
        self.ser.reset_input_buffer()

    def read_until(self, terminator: bytes, timeout: float) -> bytes:
        """Read until ``terminator`` arrives (returned, included) or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        buf = self.pending
        while True:
            idx = buf.find(terminator)
            if idx >= 0:
                cut = idx + len(terminator)
                self.pending = bytearray(buf[cut:])
                return bytes(buf[:cut])
            if time.monotonic() > deadline:
                self.pending = buf
                raise TimeoutError("no %r from the board within %.1f s (got %r)"
                                   % (terminator, timeout, bytes(buf[-200:])))
            byte = self.ser.read(1)   # blocking with the port's timeout
            if byte:
                buf += byte
                waiting = self.ser.in_waiting
                if waiting:
                    buf += self.ser.read(waiting)


def write_paced(ser, data: bytes, chunk: int = CHUNK, pause: float = CHUNK_PAUSE) -> None:
    """Write in small chunks with a pause, so a 64-byte UART buffer never overflows."""
    for i in range(0, len(data), chunk):
        ser.write(data[i:i + chunk])
        ser.flush()
        time.sleep(pause)


class RawRepl:
    """Drive a board's raw REPL over an open pyserial port.

    ``enter()`` interrupts whatever runs (Ctrl-C) and switches to raw mode;
    ``exec(code)`` runs code and returns its stdout or raises ``ReplError``.
    """

    def __init__(self, ser, chunk: int = CHUNK, pause: float = CHUNK_PAUSE):
        self.ser = ser
        self.reader = Reader(ser)
        self.chunk = chunk
        self.pause = pause

    def enter(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        self.ser.write(b"\r\x03\x03")
        self.ser.flush()
        time.sleep(0.2)
        while True:
            self.reader.discard()
            self.ser.write(b"\x01")
            self.ser.flush()
            try:
                self.reader.read_until(RAW_BANNER, min(2.0, max(0.1, deadline - time.monotonic())))
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the board's raw REPL did not answer within %.0f s"
                                       % timeout)
                self.ser.write(b"\r\x03\x03")
                self.ser.flush()
                time.sleep(0.2)

    def exit(self) -> None:
        self.ser.write(b"\x02")
        self.ser.flush()

    def exec_raw(self, code, timeout: float = 30.0):
        """Run ``code``; return (stdout, stderr) as text."""
        if isinstance(code, str):
            code = code.encode("utf-8")
        write_paced(self.ser, code, self.chunk, self.pause)
        self.ser.write(b"\x04")
        self.ser.flush()
        head = self.reader.read_until(b"OK", min(timeout, 10.0))
        if not head.endswith(b"OK"):
            raise TimeoutError("raw REPL did not accept the script: %r" % head)
        out = self.reader.read_until(b"\x04", timeout)[:-1]
        err = self.reader.read_until(b"\x04", timeout)[:-1]
        self.reader.read_until(b">", timeout)
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def exec(self, code, timeout: float = 30.0) -> str:
        out, err = self.exec_raw(code, timeout)
        if err:
            raise ReplError(out, err)
        return out

    def soft_reset(self, timeout: float = 10.0) -> None:
        """Ctrl-D at the raw prompt: the board restarts MicroPython (and main.py)."""
        self.ser.write(b"\x04")
        self.ser.flush()
        self.reader.read_until(b"soft reboot", timeout)
