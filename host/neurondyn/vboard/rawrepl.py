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
        return self.read_until_any((terminator,), timeout)

    def read_until_any(self, terminators, timeout: float) -> bytes:
        """Read up to and including the first of ``terminators`` to arrive."""
        deadline = time.monotonic() + timeout
        buf = self.pending
        while True:
            hits = [(buf.find(t), t) for t in terminators if buf.find(t) >= 0]
            if hits:
                idx, term = min(hits)
                cut = idx + len(term)
                self.pending = bytearray(buf[cut:])
                return bytes(buf[:cut])
            if time.monotonic() > deadline:
                self.pending = buf
                raise TimeoutError("no %r from the board within %.1f s (got %r)"
                                   % (terminators[0], timeout, bytes(buf[-200:])))
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


# Flow control for boards whose raw REPL has none (MicroPython 1.9.2 on the
# micro:bit): this loader, defined once per session, reads N bytes from the UART
# into one preallocated bytearray (no slice assignment on that build, hence the
# byte loop) in 32-byte blocks and acknowledges each block with 0x06, so the host never
# has more than 32 bytes in flight and the 64-byte UART buffer cannot overflow
# however the host and QEMU are scheduled. Ctrl-C is disabled while it reads so
# binary payloads (0x03) pass. ``_L(n)`` runs the n bytes as a script (the
# bytearray freed before compiling: peak heap as low as the plain raw REPL's);
# ``_L(n, f)`` hands them to ``f``. It keeps ~500 B of heap while a session lives.
MICROBIT_LOADER = (
    "def _L(n,f=0):\n"
    " from microbit import uart\n"
    " import micropython as m\n"
    " m.kbd_intr(-1)\n"
    " b=bytearray(n);p=0\n"
    " try:\n"
    "  while p<n:\n"
    "   uart.write(b'\\x06')\n"
    "   e=min(p+32,n)\n"
    "   while p<e:\n"
    "    d=uart.read(e-p)\n"
    "    if d:\n"
    "     for x in d:\n"
    "      b[p]=x;p+=1\n"
    " finally:\n"
    "  m.kbd_intr(3)\n"
    " if f:\n"
    "  return f(b)\n"
    " b=bytes(b)\n"
    " import gc;gc.collect()\n"
    " exec(b)\n"
)
ACK = b"\x06"
DIRECT_MAX = 48      # scripts up to this size are sent as they are


class RawRepl:
    """Drive a board's raw REPL over an open pyserial port.

    ``enter()`` interrupts whatever runs (Ctrl-C) and switches to raw mode;
    ``exec(code)`` runs code and returns its stdout or raises ``ReplError``;
    ``send(func, data)`` calls board function ``func`` with ``data`` as bytes.
    With ``loader`` (the micro:bit's: MICROBIT_LOADER) longer scripts and all
    payloads go through the acknowledged loader; without it they are paced.
    """

    def __init__(self, ser, chunk: int = CHUNK, pause: float = CHUNK_PAUSE, loader: str = None):
        self.ser = ser
        self.reader = Reader(ser)
        self.chunk = chunk
        self.pause = pause
        self.loader = loader
        self._loader_ready = False

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

    def _finish(self, timeout):
        out = self.reader.read_until(b"\x04", timeout)[:-1]
        err = self.reader.read_until(b"\x04", timeout)[:-1]
        self.reader.read_until(b">", timeout)
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def _start(self, command: bytes, timeout: float) -> None:
        write_paced(self.ser, command, self.chunk, self.pause)
        self.ser.write(b"\x04")
        self.ser.flush()
        head = self.reader.read_until(b"OK", min(timeout, 10.0))
        if not head.endswith(b"OK"):
            raise TimeoutError("raw REPL did not accept the script: %r" % head)

    def _direct(self, code: bytes, timeout: float):
        self._start(code, timeout)
        return self._finish(timeout)

    def _ensure_loader(self) -> None:
        if self._loader_ready:
            return
        last = None
        for _ in range(3):       # sent paced: a byte lost under heavy load means a retry
            out, err = self._direct(self.loader.encode() + b"print('L', _L)\n", 30.0)
            if not err and out.startswith("L "):
                self._loader_ready = True
                return
            last = err or out
            self.enter()
        raise ReplError("", "could not install the raw-REPL loader: %s" % last)

    def _streamed(self, command: bytes, payload: bytes, timeout: float):
        """Run ``command`` (which calls _L(len(payload))) and feed it ``payload`` with acks."""
        self._start(command, timeout)
        # the loader asks for each 32-byte piece with an ACK, the first once
        # Ctrl-C is off (a 0x03 in a payload sent before that would raise
        # KeyboardInterrupt in the board's import lines)
        for i in range(0, len(payload), 32):
            got = self.reader.read_until_any((ACK, b"\x04"), min(timeout, 20.0))
            if not got.endswith(ACK):
                # the command failed before taking everything: collect stderr, resync
                err = self.reader.read_until(b"\x04", timeout)[:-1]
                self.enter()
                return got[:-1].decode("utf-8", "replace"), err.decode("utf-8", "replace") or "aborted"
            self.ser.write(payload[i:i + 32])
            self.ser.flush()
        return self._finish(timeout)

    def exec_raw(self, code, timeout: float = 30.0, flow: bool = True):
        """Run ``code``; return (stdout, stderr) as text.

        ``flow=False`` sends even a long script paced, without the loader (no
        flow control: only for measurements that must not see the loader).
        """
        if isinstance(code, str):
            code = code.encode("utf-8")
        if self.loader is None or len(code) <= DIRECT_MAX or not flow:
            return self._direct(code, timeout)
        self._ensure_loader()
        return self._streamed(b"_L(%d)" % len(code), code, timeout)

    def exec(self, code, timeout: float = 30.0, flow: bool = True) -> str:
        out, err = self.exec_raw(code, timeout, flow)
        if err:
            raise ReplError(out, err)
        return out

    def send(self, func: str, data: bytes, timeout: float = 30.0) -> str:
        """Call ``func(data)`` on the board (data as bytes); return its output."""
        data = bytes(data)
        if self.loader is None:
            return self.exec("%s(%r)" % (func, data), timeout)
        self._ensure_loader()
        out, err = self._streamed(b"_L(%d,%s)" % (len(data), func.encode()), data, timeout)
        if err:
            raise ReplError(out, err)
        return out

    def reset_board(self, timeout: float = 10.0) -> None:
        """A hard reset of a micro:bit (``microbit.reset()``), sent paced and acknowledged
        (the raw REPL's OK): a byte lost on a busy line would leave the board at its
        raw REPL, so it is sent again after that. The board then boots as after a
        power-on (and runs main.py)."""
        self._loader_ready = False
        for attempt in range(3):
            try:
                self._start(b"import microbit\nmicrobit.reset()", 10.0)
                return
            except TimeoutError:
                if attempt == 2:
                    raise
                self.enter(timeout=timeout)

    def restart(self, timeout: float = 10.0) -> None:
        """reset_board, then the raw REPL again (for a board with no main.py to run)."""
        self.reset_board(timeout)
        time.sleep(0.5)
        self.enter(timeout=timeout)

    def soft_reset(self, timeout: float = 10.0) -> None:
        """Ctrl-D at the raw prompt: the board restarts MicroPython (in raw mode)."""
        self._loader_ready = False
        self.ser.write(b"\x04")
        self.ser.flush()
        self.reader.read_until(b"soft reboot", timeout)
