"""A bad cable on demand: a relay between the pty a user opens and a board's pty.

``FaultyLine(board_port, spec)`` opens a new pty (``.port``) and forwards bytes
both ways between it and ``board_port``, dropping, corrupting (one bit flipped)
and duplicating bytes with the given probabilities and stalling the line at
random -- independently in each direction, reproducibly for a seed (one
random generator per direction, so the faults a byte meets depend only on its
position in its own stream). Spec syntax (``ndyn emulate --line-faults``)::

    drop=0.01,corrupt=0.01,dup=0.005,stall=50,seed=7

``stall=MS`` pauses a direction for MS milliseconds; a stall starts before a
byte with probability ``stall_p`` (default 0.002). ``.counts`` tallies what
was done to each direction.
"""
from __future__ import annotations

import os
import random
import select
import threading
import time
import tty

from ..errors import UserError

KEYS = {"drop": float, "corrupt": float, "dup": float, "stall": float, "stall_p": float,
        "seed": int}


def parse_spec(spec: str) -> dict:
    """``drop=P,corrupt=P,dup=P,stall=MS[,stall_p=P][,seed=S]`` -> dict (UserError if bad)."""
    out = {"drop": 0.0, "corrupt": 0.0, "dup": 0.0, "stall": 0.0, "stall_p": 0.002, "seed": 0}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in KEYS:
            raise UserError("bad --line-faults item %r (expected drop=P,corrupt=P,dup=P,stall=MS,"
                            "stall_p=P,seed=S)" % part)
        try:
            out[key] = KEYS[key](value)
        except ValueError:
            raise UserError("bad --line-faults value %r" % part)
    for key in ("drop", "corrupt", "dup", "stall_p"):
        if not 0.0 <= out[key] <= 1.0:
            raise UserError("--line-faults %s must be a probability in [0, 1]" % key)
    if out["stall"] < 0:
        raise UserError("--line-faults stall must be >= 0 milliseconds")
    return out


class Mangler:
    """The faults of one direction: bytes in, bytes out (and stalls to honour)."""

    def __init__(self, cfg: dict, seed: int):
        self.cfg = cfg
        self.rng = random.Random(seed)
        self.counts = {"bytes": 0, "dropped": 0, "corrupted": 0, "duplicated": 0, "stalls": 0}

    def apply(self, data: bytes):
        """Yield (bytes to send, seconds to stall before them) pieces."""
        c, rng, out = self.cfg, self.rng, bytearray()
        for b in data:
            self.counts["bytes"] += 1
            if c["stall"] and rng.random() < c["stall_p"]:
                self.counts["stalls"] += 1
                if out:
                    yield bytes(out), 0.0
                    out = bytearray()
                yield b"", c["stall"] / 1000.0
            if rng.random() < c["drop"]:
                self.counts["dropped"] += 1
                continue
            if rng.random() < c["corrupt"]:
                self.counts["corrupted"] += 1
                b ^= 1 << rng.randrange(8)
            out.append(b)
            if rng.random() < c["dup"]:
                self.counts["duplicated"] += 1
                out.append(b)
        if out:
            yield bytes(out), 0.0


class FaultyLine:
    """Relay with faults between a new pty (``.port``) and ``board_port``. Context manager."""

    def __init__(self, board_port: str, spec):
        self.cfg = parse_spec(spec) if isinstance(spec, str) else dict(spec)
        seed = self.cfg["seed"]
        self.to_board = Mangler(self.cfg, seed * 2 + 1)
        self.to_host = Mangler(self.cfg, seed * 2 + 2)
        self._board = os.open(board_port, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._board)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._pump, args=(self._master, self._board, self.to_board),
                                          daemon=True),
                         threading.Thread(target=self._pump, args=(self._board, self._master, self.to_host),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def counts(self) -> dict:
        return {"to_board": dict(self.to_board.counts), "to_host": dict(self.to_host.counts)}

    def _pump(self, src, dst, mangler):
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([src], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(src, 4096)
            except OSError:
                time.sleep(0.05)      # no one on the user side yet (EIO): wait
                continue
            if not data:
                time.sleep(0.05)
                continue
            for piece, stall in mangler.apply(data):
                if stall:
                    time.sleep(stall)
                while piece and not self._stop.is_set():
                    try:
                        n = os.write(dst, piece)
                    except OSError:
                        break
                    piece = piece[n:]

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for fd in (self._board, self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
