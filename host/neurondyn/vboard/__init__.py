"""Virtual boards: the micro:bit V1 under QEMU and current MicroPython under wasmtime.

Both expose a serial port (a pty) that the host tools open like real hardware,
plus a harness that runs a script on a board and returns what it printed, a
faulty-line relay (FaultyLine) and, on the micro:bit, flash snapshots and
power cuts through QEMU's monitor.
"""
from .microbit import MicrobitVM, build_microbit_hex, require_qemu
from .wasm import WasmBoard
from .rawrepl import RawRepl, ReplError
from .harness import MicrobitSession, run_on_microbit, run_on_wasm
from .faults import FaultyLine

__all__ = ["MicrobitVM", "WasmBoard", "MicrobitSession", "RawRepl", "ReplError", "FaultyLine",
           "build_microbit_hex", "require_qemu", "run_on_microbit", "run_on_wasm"]
