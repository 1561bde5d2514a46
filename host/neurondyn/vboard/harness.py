"""Run MicroPython code on the virtual boards and get its printed output back.

Used by the firmware tests: the same test script runs inside MicroPython 1.9.2
(virtual micro:bit) and current MicroPython (mpy-wasm).

    out = run_on_microbit({"fwmodel.py": src}, "import fwmodel\\nprint(1)")
    with MicrobitSession(files) as board:      # one boot, many scripts
        board.run("import gc\\nprint(gc.mem_free())")

Scripts go through the raw REPL on the micro:bit, flow-controlled by a small
loader (rawrepl.MICROBIT_LOADER, ~500 B of heap while a session lives); they
are compiled in its ~9 KB heap, so keep each one short (a few KB) and put
bulk code in files.
A board-side exception raises ``ReplError`` (``.stdout``, ``.stderr``).
``.py`` files are compacted for the micro:bit's 29 KB file system
(vboard.minify.minify_checked: comments and docstrings dropped, statements
joined, local names shortened; line numbers are not kept, so a traceback
points into the compacted file).
"""
from __future__ import annotations

import serial

from .microbit import MicrobitVM
from .rawrepl import MICROBIT_LOADER, RawRepl
from .wasm import HEAP, run_script_on_wasm


class MicrobitSession:
    """A booted virtual micro:bit with its raw REPL open, for running many scripts."""

    def __init__(self, files=None, hex_path=None, icount: int = 6, timeout: float = 30.0,
                 minify: bool = True):
        self.vm = MicrobitVM(hex_path=hex_path, files=None if hex_path else (files or {}),
                             icount=icount, minify=minify)
        self.ser = None
        try:
            self.ser = serial.Serial(self.vm.port, 115200, timeout=0.2)
            self.repl = RawRepl(self.ser, loader=MICROBIT_LOADER)
            self.repl.enter(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def port(self):
        return self.vm.port

    def run(self, script: str, timeout: float = 60.0, flow: bool = True) -> str:
        """Run ``script``; return what it printed (raises ReplError on an exception).

        Scripts longer than 48 bytes go through the flow-controlled loader
        (``flow=False``: paced only, no loader in the heap, bytes may drop).
        """
        return self.repl.exec(script, timeout=timeout, flow=flow)

    def soft_reset(self) -> None:
        """Restart MicroPython (fresh heap, modules re-imported) and re-enter raw REPL."""
        self.repl.soft_reset()
        self.repl.enter()

    def stop(self) -> None:
        if self.ser is not None:
            try:
                self.ser.close()
            except Exception:
                pass
            self.ser = None
        self.vm.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_on_microbit(files: dict, script: str, timeout: float = 60.0, minify: bool = True) -> str:
    """Boot a virtual micro:bit with ``files``, run ``script`` via raw REPL, return its output."""
    with MicrobitSession(files, timeout=min(timeout, 30.0), minify=minify) as board:
        return board.run(script, timeout=timeout)


def run_on_wasm(files: dict, script: str, timeout: float = 60.0, heap: str = HEAP) -> str:
    """Run ``script`` on a fresh mpy-wasm board with ``files``; return its output.

    ``heap`` is MicroPython's heap size (default 64M, see vboard.wasm.HEAP;
    None: the port's 1 MB default).
    """
    return run_script_on_wasm(files, script, timeout=timeout, heap=heap)
