"""What every virtual board shares: a child process to stop, temp files to remove.

A board is a context manager; leaving it (or garbage-collecting it) powers it
off, so a failing test or a Ctrl-C never leaves a QEMU or wasmtime behind.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess


def terminate(proc, grace: float = 5.0) -> None:
    """SIGTERM ``proc``, then SIGKILL if it has not exited after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class VirtualBoard:
    """Base of MicrobitVM and WasmBoard: ``proc`` and ``_tmp`` are cleaned up by ``stop``."""

    proc = None
    _tmp = None

    def _release(self) -> None:
        """Board-specific cleanup between stopping the process and removing temp files."""

    def stop(self) -> None:
        """Power off and remove temporary files. Safe to call twice."""
        proc, self.proc = self.proc, None
        terminate(proc)
        self._release()
        if self._tmp and os.path.isdir(self._tmp):
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        try:
            self.stop()
        except Exception:
            pass
