"""Talk to a board running the ndyn firmware over a serial port (docs/protocol.md).

``Transport`` owns the byte stream (pyserial, blocking reads with timeouts:
``in_waiting`` can read 0 on a pty while data waits). ``Board`` sits on top:
stop-and-wait requests with retransmission on timeout or NAK, fragments for
messages longer than one frame, and the commands HELLO / INFER / QSCALE /
UPLOAD / STATS / REPL. Any link trouble is a ``DeviceError`` with one line.

    with Board.open("/dev/ttyACM0") as b:
        info = b.hello()
        preds, status = b.infer(rows)
"""
from __future__ import annotations

import struct
import time

import numpy as np

from . import protocol as P
from .errors import DeviceError

DEFAULT_TIMEOUT = 1.0         # seconds for a reply to one frame (board work + wire)
COMMIT_TIMEOUT = 10.0         # parsing + saving a model on the board
# boards with an upload mode entered by a restart (docs/protocol.md 4)
UPLOAD_MODE_BOARDS = ("microbit-v1",)
RESTART_WAIT = 30.0           # a board that restarts (the V1 after an upload) until it answers
ATTEMPTS = 8                  # sends of one frame before giving up


class Transport:
    """The serial byte stream: writes frames, returns decoded frames as they arrive."""

    def __init__(self, port: str, baud: int = 115200):
        import serial
        self.port = port
        try:
            self.ser = serial.Serial(port, baud, timeout=0.05, write_timeout=5)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError("cannot open serial port %s: %s" % (port, exc)) from None
        self.decoder = P.FrameDecoder()
        self.bytes_out = 0
        self.bytes_in = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        import serial
        try:
            self.ser.write(data)
            self.ser.flush()
        except (serial.SerialException, OSError) as exc:
            raise DeviceError("writing to %s failed: %s" % (self.port, exc)) from None
        self.bytes_out += len(data)

    def read_frames(self, deadline: float, stop_on_broken: bool = False) -> list:
        """Frames that arrive before ``deadline`` (returns as soon as some do; with
        ``stop_on_broken`` also, empty, as soon as a broken frame does)."""
        import serial
        broken = self.decoder.bad
        while True:
            try:
                data = self.ser.read(1)
                if data:
                    waiting = self.ser.in_waiting
                    if waiting:
                        data += self.ser.read(waiting)
            except (serial.SerialException, OSError) as exc:
                raise DeviceError("reading from %s failed: %s" % (self.port, exc)) from None
            if data:
                self.bytes_in += len(data)
                frames = self.decoder.feed(data)
                if frames or (stop_on_broken and self.decoder.bad > broken):
                    return frames
            if time.monotonic() >= deadline:
                return []

    def discard_input(self) -> None:
        try:
            self.ser.reset_input_buffer()
        except Exception:
            pass
        self.decoder = P.FrameDecoder()

    def close(self) -> None:
        self.closed = True
        try:
            self.ser.close()
        except Exception:
            pass


class UnexpectedReply(DeviceError):
    """The board answered with another reply type than the request asks for."""


class BoardError(DeviceError):
    """The board answered a request with an error code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class Board:
    """A board speaking protocol version ``protocol.PROTO_VERSION``."""

    def __init__(self, transport: Transport, timeout: float = DEFAULT_TIMEOUT):
        self.t = transport
        self.port = transport.port
        self.timeout = timeout
        self.seq = 0
        self.retransmits = 0
        self.naks = 0
        self.left_upload_mode = 0     # times open() found the board in its upload mode
        self.frames = 0
        self.info = None
        self._qscale = None

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(cls, port: str, baud: int = 115200, timeout: float = DEFAULT_TIMEOUT) -> "Board":
        """Open ``port`` and do the version handshake (DeviceError if it fails)."""
        board = cls(Transport(port, baud), timeout=timeout)
        try:
            board.handshake()
        except BaseException:
            board.close()
            raise
        return board

    def handshake(self) -> dict:
        """Stale input dropped, HELLO, and a board found in its upload mode taken out
        of it (leave_upload_mode). Returns the board's HELLO."""
        self.t.discard_input()
        info = self.hello()
        if not info["model_loaded"] and info["board"] in UPLOAD_MODE_BOARDS:
            info = self.leave_upload_mode()
        return info

    def leave_upload_mode(self) -> dict:
        """A board that answers without a model may sit in its upload mode (the
        micro:bit V1: a power cut between UP_BEGIN and its restart, or a host
        gone mid-upload): a request other than UP_BEGIN/UP_DATA ends that
        mode with a restart, and the board serves its last good model again.
        UP_COMMIT with no upload begun is such a request: upload mode refuses
        it with E_BAD_STATE and restarts; a board that just has no model
        answers E_UNKNOWN and stays. Returns the handshake after it."""
        try:
            self.request(P.UP_COMMIT, what="UP_COMMIT")
        except BoardError as exc:
            if exc.code == P.E_BAD_STATE:
                self.left_upload_mode += 1
                return self.await_restart("leaving its upload mode")
        return self.info

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.t.close()

    # -- frames ----------------------------------------------------------------
    @property
    def max_payload(self) -> int:
        return self.info["max_payload"] if self.info else 53

    def _exchange(self, typ: int, payload: bytes, timeout: float, what: str):
        """Send one frame, stop and wait for its reply; retransmit on timeout/NAK."""
        self.seq = (self.seq + 1) & 0xFF
        seq = self.seq
        frame = P.build_frame(typ, seq, payload)
        for attempt in range(ATTEMPTS):
            if attempt:
                self.retransmits += 1
            self.t.write(frame)
            self.frames += 1
            deadline = time.monotonic() + timeout
            resend = False
            while not resend:
                # a broken frame while waiting is the reply (or a NAK) hit on the
                # way back: the board is idle again, so resend now, not at the deadline
                frames = self.t.read_frames(deadline, stop_on_broken=True)
                if not frames:
                    break                                   # timeout or broken: resend
                for rtype, rseq, body in frames:
                    if rtype == P.ERROR and len(body) >= 2 and body[1] == 0 \
                            and body[0] in P.NAK_CODES:
                        self.naks += 1                      # the board could not read it
                        resend = True
                    elif rseq == seq:
                        return rtype, body                  # stale replies are dropped
        raise DeviceError("board at %s does not answer %s (%d attempts, %.1f s each)"
                          % (self.port, what, ATTEMPTS, timeout))

    def request(self, typ: int, payload: bytes = b"", timeout: float = None,
                what: str = None) -> bytes:
        """One message (fragmented if longer than a frame); returns the reply payload."""
        timeout = timeout or self.timeout
        what = what or "request 0x%02x" % typ
        step = self.max_payload
        chunks = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            rtype, body = self._exchange(typ if last else typ | P.MORE, chunk, timeout, what)
            if rtype == P.ERROR:
                code = body[0] if body else 0
                raise BoardError("board at %s refused %s: %s (error %d)"
                                 % (self.port, what, P.ERROR_NAMES.get(code, "unknown"), code),
                                 code)
            expected = (typ | P.REPLY) if last else P.ACK
            if rtype != expected:
                raise UnexpectedReply("board at %s answered %s with frame type 0x%02x"
                                      % (self.port, what, rtype))
        return body

    # -- commands --------------------------------------------------------------
    def hello(self) -> dict:
        """Handshake: versions, board, model hash/shape, heap free, limits."""
        for attempt in range(2):
            try:
                body = self.request(P.HELLO, P.hello_request(), what="the handshake (HELLO)")
                break
            except UnexpectedReply:
                # The board answered from its duplicate cache: the previous session's
                # last frame carried this seq. The next seq is new to it.
                if attempt:
                    raise
            except DeviceError as exc:
                if isinstance(exc, BoardError):
                    raise
                raise DeviceError("no ndyn firmware answers on %s (is the board flashed? "
                                  "try `ndyn flash`)" % self.port) from None
        try:
            info = P.parse_hello(body)
        except P.FrameError as exc:
            raise DeviceError("board at %s sent a bad handshake: %s" % (self.port, exc)) from None
        if info["proto"] != P.PROTO_VERSION:
            raise DeviceError("board at %s speaks protocol %d, this ndyn speaks %d: "
                              "re-flash its firmware with `ndyn flash`"
                              % (self.port, info["proto"], P.PROTO_VERSION))
        self.info = info
        self._qscale = None           # HELLO resets the board's session state
        return dict(info)

    def stats(self) -> dict:
        out = P.parse_stats(self.request(P.STATS, what="STATS"))
        out["host_retransmits"] = self.retransmits
        return out

    def batch_size(self, int16: bool = False) -> int:
        """Samples per INFER message that fit the board's message and reply buffers."""
        info = self.info
        width = (2 if int16 else 4) * info["d_in"]
        per = min((info["max_msg"] - 1) // width, info["max_reply"] // (1 + 4 * info["d_out"]))
        if per < 1:
            raise DeviceError("the board's buffers cannot hold one %d -> %d sample"
                              % (info["d_in"], info["d_out"]))
        return per

    def set_int16_scale(self, offset, scale) -> None:
        """Per-channel fixed point for int16 INFER: raw = offset + scale * q."""
        self.request(P.QSCALE, P.qscale_payload(offset, scale), what="QSCALE")
        self._qscale = (np.asarray(offset, float), np.asarray(scale, float))

    def infer(self, rows, int16: bool = False, progress=None) -> tuple:
        """Predictions for raw sensor rows (N, d_in): (preds (N, d_out), status (N,)).

        ``status`` is 0 or an error code per row (E_BAD_INPUT = 5: a mapped
        input <= 0, NaN or inf); such rows have NaN predictions. int16 uses the
        scale set by ``set_int16_scale`` or, if none, one chosen from ``rows``.
        """
        info = self.info
        if not info["model_loaded"]:
            raise DeviceError("the board at %s has no model: upload one with `ndyn flash`"
                              % self.port)
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != info["d_in"]:
            raise DeviceError("the board's model takes %d inputs, got rows of shape %s"
                              % (info["d_in"], rows.shape))
        n, d_out = rows.shape[0], info["d_out"]
        if int16:
            if self._qscale is None:
                self.set_int16_scale(*P.choose_int16_scale(rows))
            data = P.quantize_int16(rows, *self._qscale)
            fmt = P.FMT_I16
        else:
            data, fmt = rows, P.FMT_F32
        per = self.batch_size(int16)
        preds = np.full((n, d_out), np.nan)
        status = np.zeros(n, dtype=np.int64)
        for start in range(0, n, per):
            block = data[start:start + per]
            body = self.request(P.INFER, P.infer_payload(block, fmt), what="INFER")
            try:
                p, s = P.parse_infer(body, len(block), d_out)
            except P.FrameError as exc:
                raise DeviceError("board at %s: %s" % (self.port, exc)) from None
            preds[start:start + len(block)] = p
            status[start:start + len(block)] = s
            if progress is not None:
                progress(len(block))
        return preds, status

    def await_restart(self, what: str, total: float = RESTART_WAIT) -> dict:
        """After a reply that announced a restart: the board's HELLO once it is back."""
        time.sleep(0.3)                       # let the board go down first
        deadline = time.monotonic() + total
        while True:
            try:
                self.t.discard_input()
                return self.hello()
            except DeviceError:
                if self.t.closed:
                    raise DeviceError("the link to %s was closed while waiting for the board "
                                      "after %s" % (self.port, what)) from None
                if time.monotonic() > deadline:
                    raise DeviceError("board at %s did not come back after %s (waited %.0f s)"
                                      % (self.port, what, total)) from None
                time.sleep(0.1)               # a port that is gone fails at once: no busy loop

    def upload(self, ndm_bytes: bytes) -> dict:
        """Send a .ndm; the board checks, saves atomically and serves it. Returns hello().

        A board may restart on the way (the micro:bit V1: into an upload mode
        without a model at UP_BEGIN, and to serve the new model after
        UP_COMMIT); its reply says so and the upload carries on after it.
        """
        data = bytes(ndm_bytes)
        crc = struct.unpack("<I", data[-4:])[0] if len(data) >= 4 else 0
        begin = struct.pack("<II", len(data), crc)
        body = self.request(P.UP_BEGIN, begin, what="UP_BEGIN")
        if body[:1] == b"\x01":
            self.await_restart("UP_BEGIN")
            body = self.request(P.UP_BEGIN, begin, what="UP_BEGIN")
            if body[:1] == b"\x01":
                raise DeviceError("board at %s restarted again at UP_BEGIN" % self.port)
        step = self.max_payload - 4
        for off in range(0, len(data), step):
            self.request(P.UP_DATA, struct.pack("<I", off) + data[off:off + step],
                         what="UP_DATA")
        body = self.request(P.UP_COMMIT, timeout=max(COMMIT_TIMEOUT, self.timeout),
                            what="UP_COMMIT")
        (model_hash,) = struct.unpack_from("<I", body, 0)
        if model_hash != crc:
            raise DeviceError("board at %s committed model %08x, expected %08x"
                              % (self.port, model_hash, crc))
        if body[7:8] == b"\x01":
            info = self.await_restart("UP_COMMIT")
            if info.get("model_hash") != crc:
                raise DeviceError("board at %s restarted with model %s after UP_COMMIT, "
                                  "expected %08x" % (self.port, info.get("model_hash"), crc))
            return info
        return self.hello()

    def to_repl(self) -> None:
        """Ask the firmware to leave its serving loop for the MicroPython REPL."""
        self.request(P.REPL, what="REPL")
