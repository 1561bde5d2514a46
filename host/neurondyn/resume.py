"""Streaming that survives a bad cable and a board reset (``ndyn stream``'s engine).

``neurondyn.link.Board`` already recovers a lost or corrupted frame (it
retransmits the same seq; the board answers duplicates from its cache). What
it cannot recover is a *session*: when the board resets (power blip, watchdog,
someone pressed reset) or the serial port vanishes and comes back (USB
re-enumeration), its frames time out, the port may fail, and the board comes
back with empty session state (no int16 scales, counters at zero). This module
wraps a Board and carries the stream across such breaks:

* the host owns the truth about which rows are answered: rows go out in
  blocks, in input order, and a block's predictions are stored by row index
  only when its reply arrives; a block that failed is sent again. INFER is
  idempotent (the board computes, it does not learn), so resending can never
  duplicate a row and every row ends with exactly one prediction;
* on any link failure (DeviceError) or a refusal that means "the session is
  gone" (bad state: int16 scales lost in a reset; busy; no memory; no model
  while it boots) it re-handshakes on the same connection (HELLO), and if
  that fails too, reopens the port; the seq counter carries on across
  reopenings, so a board that did *not* reset cannot mistake the new
  session's first frame for a retransmission of the old one's last;
* after each handshake it checks the board still serves the same model (hash,
  shape): predictions from another model would be silently wrong, so that
  is fatal, as is a board that lost its model. A board can also reboot
  while the link is resending a frame, and answer the resent INFER from
  whatever model it booted with, without any error showing: so a block
  whose answer took longer than any board needs to reboot (REBOOT_MIN) is
  accepted only after a handshake shows the same model;
* the rows per INFER, the bytes per frame (Sizer) and the wait before a
  resend (ReplyClock) follow the line, so a lossy cable costs throughput,
  not answers;
* if no row has been answered for ``give_up`` seconds (the board is gone for
  good), it stops with ``StreamInterrupted``, which carries the rows answered
  so far so the caller can still write them.
"""
from __future__ import annotations

import random
import time

import numpy as np

from . import protocol as P
from .errors import DeviceError

GIVE_UP = 20.0            # seconds without an answered row before we stop
RETRY_PAUSE = 0.25        # between two attempts to reach a vanished board
REBOOT_MIN = 0.5          # no board reboots and serves again faster (boot + imports + model)

# refusals after which a fresh handshake (and a resend) can succeed; bad length
# too: a board that reset between the fragments of a message gets its tail alone
SESSION_CODES = (P.E_BAD_STATE, P.E_BUSY, P.E_NO_MEM, P.E_NO_MODEL, P.E_BAD_LEN)


class StreamInterrupted(DeviceError):
    """The stream stopped before every row was answered.

    ``preds`` (N, d_out) and ``status`` (N,) hold what is known; ``answered``
    is a boolean mask (always a prefix: rows are answered in order).
    """

    def __init__(self, message, preds, status, answered):
        super().__init__(message)
        self.preds = preds
        self.status = status
        self.answered = answered


class _Fatal(DeviceError):
    """A reason to stop that no retry can fix (another model, no model, wrong version)."""


class Sizer:
    """How many rows go in one INFER and how long a frame may be, from how the line behaves.

    A frame survives a line that loses a fraction p of its bytes with
    probability (1 - p)^length: at 1 % loss a 260-byte frame (the largest the
    stdin boards take) gets through 7 % of the time, a 60-byte one 55 %. So
    the size follows the line, additive-increase / multiplicative-decrease: a
    block that needed a retransmission halves the bytes per exchange (down to
    one row, 16-byte frames), a clean block adds a row's worth back (up to the
    board's limits). On a clean line it never leaves the maximum.
    """

    MIN_PAYLOAD = 16

    def __init__(self, max_rows: int, row_in: int, row_out: int, max_payload: int):
        self.max_rows = max(1, max_rows)
        self.row = row_in + row_out          # request + reply bytes per row
        self.max_payload = max_payload
        self.budget = self.limit = self.max_rows * self.row

    @property
    def rows(self) -> int:
        return max(1, min(self.max_rows, self.budget // self.row))

    @property
    def payload(self) -> int:
        return max(self.MIN_PAYLOAD, min(self.max_payload, self.budget // 2))

    def done(self, resent: bool) -> None:
        if resent:
            self.trouble()
        else:
            self.budget = min(self.limit, self.budget + self.row)

    def trouble(self) -> None:
        self.budget = max(self.row, self.budget // 2)


class ReplyClock:
    """How long to wait for a reply before resending: learnt from the line, capped by the user's.

    On a lossy line most lost time is spent waiting for replies that will not
    come, so the wait follows the measured round trip (smoothed over clean
    exchanges, times 4, plus 20 ms; at least MIN_WAIT) and never exceeds
    ``--timeout``. Waiting too little is harmless: a resent frame is answered
    from the board's duplicate cache, not run twice.
    """

    MIN_WAIT = 0.05

    def __init__(self, limit: float):
        self.limit = limit
        self.srtt = None

    def sample(self, seconds: float) -> None:
        self.srtt = seconds if self.srtt is None else 0.8 * self.srtt + 0.2 * seconds

    @property
    def timeout(self) -> float:
        if self.srtt is None:
            return self.limit
        return min(self.limit, max(self.MIN_WAIT, 4 * self.srtt + 0.02))


class ResumingStream:
    """Stream rows to the board at ``port``, resuming after resets and line drops.

    ``open_board(port, seq)`` opens a ``link.Board`` whose frames are numbered
    on from ``seq`` and shakes hands (used for the first session and whenever
    the port must be reopened); by default a pyserial ``link.Transport`` at
    ``baud`` with the reply ``timeout``. The first connection is retried only
    while broken frames come back (see ``connect``): a port with nothing or
    something else behind it is the user's to fix, at once.
    """

    def __init__(self, port, baud=115200, timeout=1.0, give_up=GIVE_UP, int16=False,
                 open_board=None, clock=time.monotonic):
        self.port = port
        self.baud = baud
        self.timeout = timeout
        self.give_up = give_up
        self.int16 = int16
        self.clock = clock
        self._open = open_board or self._default_open
        self.board = None
        self.info = None          # the first handshake: the model every answer must come from
        self.scale = None         # int16 (offset, scale), fixed for the whole stream
        self.resumes = 0          # sessions re-established after a break
        self.reopens = 0          # of which the port had to be reopened
        self.retransmits = 0      # frames resent, over every session
        self.bytes = 0            # wire bytes both ways, over every session
        self._seq = random.randrange(256)   # last seq sent (a new session starts anywhere)
        self.heard = 0            # broken frames seen by the last failed opening
        self.rtt_hint = None      # seconds of the first clean handshake
        self.verified = 0         # slow blocks whose answers were checked by a handshake

    # -- sessions --------------------------------------------------------------
    def _default_open(self, port, seq=0):
        """Open ``port`` and shake hands, numbering frames on from ``seq``."""
        from .link import Board, Transport
        board = Board(Transport(port, self.baud), timeout=self.timeout)
        board.seq = seq & 0xFF
        try:
            try:
                board.handshake()
            except DeviceError as exc:
                # The board's duplicate cache outlives a session: a HELLO whose
                # seq the board ran last is answered with that old reply (maybe
                # not a HELLO). Once more with the next seq, if anything came back.
                if getattr(exc, "code", None) is not None or "speaks protocol" in str(exc) \
                        or not board.t.bytes_in:
                    raise
                board.handshake()
        except BaseException:
            # frames came back, just none whole: a framed peer on a bad line
            self.heard = board.t.decoder.bad + board.naks
            board.close()
            raise
        return board

    def connect(self) -> dict:
        """First session; returns the board's HELLO.

        Retried (for up to ``give_up`` seconds) only while what answers looks
        like our firmware on a bad line -- frames came back, none whole -- so
        a port with nothing or something else behind it fails at once.
        """
        start = self.clock()
        while True:
            self.heard = 0
            try:
                t0 = time.monotonic()
                self.board = self._open(self.port, self._seq)
                if not self.board.retransmits:        # a clean handshake: a first round trip
                    self.rtt_hint = time.monotonic() - t0
                break
            except DeviceError as exc:
                if "speaks protocol" in str(exc) or not self.heard \
                        or self.clock() - start > self.give_up:
                    raise
                self._seq = (self._seq + 8) & 0xFF
        self.info = dict(self.board.info)
        return self.info

    def _account(self, board) -> None:
        """Fold a finished session's counters into the stream's totals."""
        self.retransmits += board.retransmits
        self.bytes += board.t.bytes_out + board.t.bytes_in
        board.retransmits = 0
        board.t.bytes_out = board.t.bytes_in = 0

    def _check(self, info: dict) -> None:
        """The board must still serve the model the stream started with."""
        first = self.info
        if not info["model_loaded"]:
            raise _Fatal("the board at %s came back without a model: flash one with "
                         "`ndyn flash`" % self.port)
        if (info["model_hash"], info["d_in"], info["d_out"]) != \
                (first["model_hash"], first["d_in"], first["d_out"]):
            raise _Fatal("the board at %s came back serving another model (hash %08x, was %08x)"
                         % (self.port, info["model_hash"] or 0, first["model_hash"] or 0))

    def _handshake(self) -> None:
        """HELLO on the current connection, reopening the port if that fails."""
        board = self.board
        if board is not None:
            info = None
            for _ in range(2):       # a HELLO landing on a half-received message is refused once
                try:
                    info = board.hello()
                    break
                except DeviceError as exc:
                    if "speaks protocol" in str(exc):
                        raise _Fatal(str(exc)) from None
                    if getattr(exc, "code", None) is None:
                        break        # no answer at all: reopen
            if info is not None:
                self._check(info)
                return
            self._account(board)
            self._seq = board.seq
            board.close()
            self.board = None
        try:
            # seqs carry on: a board that did not reset must not take our
            # HELLO for a retransmission of the last frame it answered
            board = self._open(self.port, self._seq)
        except DeviceError as exc:            # not back yet: the caller retries
            if "speaks protocol" in str(exc):
                raise _Fatal(str(exc)) from None
            raise
        self.board = board
        self.reopens += 1
        self._check(board.info)

    def _session_ready(self, payload: int) -> None:
        """Session state the stream needs: int16 scales on the board, our frame size."""
        board = self.board
        board.info["max_payload"] = max(1, min(payload, self.info["max_payload"]))
        if self.int16 and board._qscale is None:
            board.set_int16_scale(*self.scale)

    # -- streaming -------------------------------------------------------------
    def batch_size(self) -> int:
        return self.board.batch_size(self.int16)

    def totals(self) -> tuple:
        """(retransmits, wire bytes) over every session so far, the current one included."""
        rt, wire = self.retransmits, self.bytes
        if self.board is not None:
            rt += self.board.retransmits
            wire += self.board.t.bytes_out + self.board.t.bytes_in
        return rt, wire

    def run(self, rows, progress=None) -> tuple:
        """Predictions (N, d_out) and status (N,) for ``rows`` (N, d_in), in order.

        Raises StreamInterrupted (a DeviceError, with the partial results) when
        the board stays unreachable for ``give_up`` seconds or comes back
        changed.
        """
        if self.board is None:
            self.connect()
        rows = np.asarray(rows, dtype=np.float64)
        n, d_out = rows.shape[0], self.info["d_out"]
        if self.int16 and self.scale is None:
            self.scale = P.choose_int16_scale(rows)
        preds = np.full((n, d_out), np.nan)
        status = np.zeros(n, dtype=np.int64)
        full = self.batch_size()
        size = Sizer(full, 1 + (2 if self.int16 else 4) * self.info["d_in"],
                     1 + 4 * d_out, self.info["max_payload"])
        clock = ReplyClock(self.timeout)
        if self.rtt_hint is not None:
            clock.sample(self.rtt_hint)
        done = 0
        broken = False                      # the session needs a handshake first
        last_progress = self.clock()
        fatal = None
        idle = 0.0
        last_error = ""
        while done < n:
            try:
                if broken:
                    self._handshake()
                    broken = False
                    self.resumes += 1
                self._session_ready(size.payload)
                block = rows[done:done + size.rows]
                resent, frames = self.board.retransmits, self.board.frames
                self.board.timeout = clock.timeout
                t0 = time.monotonic()
                p, s = self.board.infer(block, int16=self.int16)
                if time.monotonic() - t0 >= REBOOT_MIN:
                    # long enough for the board to have rebooted while we resent:
                    # its answer counts only if it still serves our model
                    self._handshake()
                    self.verified += 1
            except _Fatal as exc:
                fatal = str(exc)
                break
            except DeviceError as exc:
                code = getattr(exc, "code", None)
                if code is not None and code not in SESSION_CODES:
                    fatal = str(exc)                        # a refusal no resend can fix
                    break
                broken = True
                size.trouble()
                last_error = str(exc).rstrip(".")
                idle = self.clock() - last_progress
                if idle > self.give_up:
                    break
                if self.board is None:
                    time.sleep(RETRY_PAUSE)                 # the port is not back yet
                continue
            clean = self.board.retransmits == resent
            size.done(not clean)
            if clean:
                clock.sample((time.monotonic() - t0) / max(1, self.board.frames - frames))
            preds[done:done + len(block)] = p
            status[done:done + len(block)] = s
            done += len(block)
            last_progress = self.clock()
            if progress is not None:
                progress(len(block))
        if done < n:
            if fatal is None:
                fatal = ("the board at %s stopped answering: %d of %d rows answered, then none "
                         "for %.0f s (last error: %s)"
                         % (self.port, done, n, idle, last_error))
            else:
                fatal = "%s (%d of %d rows answered)" % (fatal.rstrip("."), done, n)
            raise StreamInterrupted(fatal, preds, status, np.arange(n) < done)
        return preds, status

    def stats(self):
        """The board's STATS now, or None if it cannot be reached."""
        if self.board is None:
            return None
        try:
            return self.board.stats()
        except DeviceError:
            return None

    def close(self) -> None:
        if self.board is not None:
            self._account(self.board)
            self.board.close()
            self.board = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
