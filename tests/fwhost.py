"""The firmware's plain path under CPython, for the tests (not a test module).

``serve(rd, wr)`` runs what main.py runs on a board without fwk.bin (every
board but the micro:bit V1): the boot (fwkern, fwboot, fwbufs, fwload +
fwplain.install, fwq) and the serving loop ``fwd.run``, with
the line given as rd(buf) -> bytes read and wr(buf, n). It returns when the
host asks for the REPL. The model store is the current folder (ndm_a,
ndm_b), as on a board.

``uart_board(rd, wr)`` makes the boot see a micro:bit-style line instead
(fwcfg IO = "uart", a ``microbit.uart`` whose readinto/write are rd/wr, and
the MicroPython names fwboot takes on a board: time.ticks_us, gc.mem_free,
micropython.kbd_intr): the plain path with the V1's limits (60-byte frames,
244-byte messages, 64-byte reads, 100-byte replies).
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


def serve(rd=None, wr=None):
    """Boot and serve until the host asks for the REPL, as main.py does where
    fwxa finds no fwk.bin."""
    import fwd
    try:       # the boot in its own file, before the loop (fws: the state, fwgo)
        import fws
    except ImportError:
        fwd.run(rd, wr)            # fwd boots (fwkern, fwboot, ...) and serves
        return
    fwd.run(fws, fws.lazy("fwgo")(fws, 0, rd, wr))


def store(blob):
    """Save ``blob`` in the model store of the current folder as the board does
    after an upload (fwload finds the newest slot, fwsave writes the other)."""
    import fwload
    import fwsave
    me = types.SimpleNamespace(A=0, lazy=lambda n: __import__(n).do)
    fwload.do(me)
    fwsave.do(me, bytearray(blob))


def fwcfg_module(board):
    """The fwcfg module ndyn generates for ``board`` (deploy.fwcfg_source)."""
    mod = types.ModuleType("fwcfg")
    exec(deploy.fwcfg_source(boards.get_profile(board)), mod.__dict__)
    return mod


class Uart:
    """microbit.uart for the boot: reads and writes go to rd / wr."""

    def __init__(self, rd, wr):
        self.rd, self.wr = rd, wr
        self.inits = []

    def init(self, baud=9600, **kw):
        self.inits.append(baud)

    def readinto(self, buf):
        return self.rd(buf)

    def write(self, data):
        self.wr(data, len(data))


@contextlib.contextmanager
def uart_board(rd, wr, heap=9000):
    """The names a micro:bit's MicroPython has, for the boot's uart line."""
    saved = {n: sys.modules.get(n) for n in ("fwcfg", "microbit", "micropython")}
    uart = Uart(rd, wr)
    sys.modules["fwcfg"] = fwcfg_module("microbit-v1")
    sys.modules["microbit"] = types.SimpleNamespace(uart=uart)
    sys.modules["micropython"] = types.SimpleNamespace(kbd_intr=lambda c: None)
    patched = []
    for mod, name, value in ((time, "ticks_us", lambda: int(time.perf_counter() * 1e6)),
                             (time, "ticks_diff", lambda a, b: a - b),
                             (gc, "mem_free", lambda: heap)):
        patched.append((mod, name, getattr(mod, name, None)))
        setattr(mod, name, value)
    try:
        yield uart
    finally:
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
