"""The firmware's plain path under CPython, for the tests (not a test module).

``serve(rd, wr)`` boots the firmware as a board without fwk.bin does (every
board but the micro:bit V1): it runs firmware/main.py itself, on a fresh set
of firmware modules (a power-up: nothing left from an earlier boot), with
what such a board has around it:

* no Thumb bridge (``import fwxa`` fails as it does where asm_thumb is
  missing) and no fwk.bin in the current folder, which is the board's flash
  (the model store's ndm_a, ndm_b);
* the board's line: ``sys.stdin.buffer`` / ``sys.stdout.buffer`` (the ESP32,
  RP2040, pyboard, mpy-wasm backend) reading with rd(buf) -> bytes read and
  writing with wr(buf, n); or, with ``uart=True``, a micro:bit-style line
  (fwcfg IO = "uart" as ndyn generates it for the micro:bit, a
  ``microbit.uart`` whose readinto/write are rd/wr, and the MicroPython names
  fwboot takes on a board: time.ticks_us, gc.mem_free), so the plain path runs
  with the V1's limits (60-byte frames, 244-byte messages, 64-byte reads,
  100-byte replies);
* ``micropython.kbd_intr`` (main.py's first call).

It returns when the firmware leaves its loop (the host asked for the REPL).
"""
import contextlib
import gc
import sys
import time
import types

from neurondyn import boards, deploy
from neurondyn.paths import firmware_dir

FW = str(firmware_dir())
if FW not in sys.path:
    sys.path.insert(0, FW)


def firmware_modules():
    return {p.stem for p in firmware_dir().glob("*.py")} | {"fwcfg", "fwxa"}


def fwcfg_module(board):
    """The fwcfg module ndyn generates for ``board`` (deploy.fwcfg_source)."""
    mod = types.ModuleType("fwcfg")
    exec(deploy.fwcfg_source(boards.get_profile(board)), mod.__dict__)
    return mod


class Uart:
    """microbit.uart: reads and writes go to rd / wr."""

    def __init__(self, rd, wr):
        self.rd, self.wr = rd, wr
        self.inits = []

    def init(self, baud=9600, **kw):
        self.inits.append(baud)

    def readinto(self, buf):
        return self.rd(buf)

    def write(self, data):
        self.wr(data, len(data))


class _In:
    def __init__(self, rd):
        self.readinto = rd


class _Out:
    def __init__(self, wr):
        self.wr = wr

    def write(self, data):
        self.wr(data, len(data))

    def flush(self):
        pass


@contextlib.contextmanager
def board(rd, wr, uart=False, heap=9000):
    """What the firmware finds around it on a board (see the module docstring)."""
    names = firmware_modules() | {"microbit", "micropython"}
    saved = {n: sys.modules.get(n) for n in names}
    for n in names:
        sys.modules.pop(n, None)            # a fresh boot: no module of an earlier one
    sys.modules["fwxa"] = None              # import fwxa: ImportError (no asm_thumb bridge)
    sys.modules["micropython"] = types.SimpleNamespace(kbd_intr=lambda c: None)
    patched = []
    stdio = sys.stdin, sys.stdout
    line = None
    if uart:
        line = Uart(rd, wr)
        sys.modules["fwcfg"] = fwcfg_module("microbit-v1")
        sys.modules["microbit"] = types.SimpleNamespace(uart=line)
        for mod, name, value in ((time, "ticks_us", lambda: int(time.perf_counter() * 1e6)),
                                 (time, "ticks_diff", lambda a, b: a - b),
                                 (gc, "mem_free", lambda: heap)):
            patched.append((mod, name, getattr(mod, name, None)))
            setattr(mod, name, value)
    else:
        sys.stdin = types.SimpleNamespace(buffer=_In(rd))
        sys.stdout = types.SimpleNamespace(buffer=_Out(wr), write=lambda s: wr(s.encode(), len(s)),
                                           flush=lambda: None)
    try:
        yield line
    finally:
        sys.stdin, sys.stdout = stdio
        for mod, name, old in patched:
            if old is None:
                delattr(mod, name)
            else:
                setattr(mod, name, old)
        for n, old in saved.items():
            if old is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = old


def serve(rd, wr, uart=False):
    """Boot (firmware/main.py) and serve until the host asks for the REPL."""
    path = firmware_dir() / "main.py"
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    with board(rd, wr, uart):
        exec(code, {"__name__": "__main__"})


def store(blob):
    """Save ``blob`` in the model store of the current folder as the board does
    after an upload (fwload finds the newest slot, fwsave writes the other)."""
    import fwload
    import fwsave
    me = types.SimpleNamespace(A=0, lazy=lambda n: __import__(n).do)
    fwload.do(me)
    fwsave.do(me, bytearray(blob))
