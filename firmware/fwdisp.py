# Dispatcher of docs/protocol.md 4: reassembles fragments, answers HELLO,
# STATS, QSCALE, INFER, UP_BEGIN/DATA/COMMIT and REPL; drives fwmodel (the
# forward pass) and fwstore (the atomic model slot). Received bytes are only
# ever parsed as numbers. Error codes: 2 bad length, 3 no model, 4 unknown
# type, 6 out of memory, 7 bad model, 9 bad state (5 bad input is per sample).
import gc
from array import array
import fwio as P
from fwproto import Link
import fwmodel
import fwstore
from fwio import copy
from fwcmd import do
from fwinfer import infer


class Server:
    def __init__(self):
        self.L = Link()
        self.m = None
        self.q = False
        self.g = bytearray(P.MMAX)
        self.ml = self.mt = self.un = self.uc = self.s = self.b = self.low = 0
        self.u = None

    def install(self, buf, crc):
        # serve the model in buf; 0 or an error code. The old model is dropped
        # first (RAM); on failure the last good one is reloaded from fwstore.
        self.m = self.x = self.y = self.qo = self.qs = None
        self.q = False
        P.collect()
        m = fwmodel.Model()
        rc = m.load(buf)
        if rc == 0 and crc is not None and m.crc != crc:
            rc = 7
        if rc:
            if crc is not None:
                self.restore()
            return rc
        self.m = m
        self.x = array('f', [0.0] * m.d_in)
        self.y = array('f', [0.0] * m.d_out)
        self.qo = array('f', [0.0] * m.d_in)
        self.qs = array('f', [0.0] * m.d_in)
        return 0

    def restore(self):
        b = fwstore.load()
        if b is not None:
            self.install(b, None)

    def serve(self):
        # one try around the whole loop, re-entered only after an error
        while True:
            try:
                self.loop()
                return
            except MemoryError:
                rc = 6
            except OSError:
                rc = 6
            except Exception:
                rc = 9
            self.ml = 0
            self.u = None
            self.L.error(self.s, rc, self.b)
            if self.m is None:
                self.restore()

    def loop(self):
        L = self.L
        rx = L.rx
        while True:
            if not P.U and P.mem_free() < self.low:
                gc.collect()
            n = L.frame() - 4
            t = rx[0]
            s = self.s = rx[1]
            if s == L.last and L.txn:
                L.st[4] += 1
                P.wr(L.tx, L.txn)
                continue
            L.last = s
            b = self.b = t & 0x3F
            if t & 0x80 or (self.ml and b != self.mt) or self.ml + n > P.MMAX:
                rc = 4 if t & 0x80 else (9 if self.ml + n <= P.MMAX else 2)
                self.ml = 0
                L.error(s, rc, t)
                continue
            copy(self.g, self.ml, rx, 2 | (n << 16))
            self.ml += n
            self.mt = b
            if t & 0x40:
                L.reply(0xFE, s, 0)
                continue
            n = self.ml
            self.ml = 0
            rc = infer(self, s, n) if b == 4 else do(self, b, s, n)
            if rc < 0:
                return
            if rc:
                L.error(s, rc, b)

def run():
    # boot: serve the last good model (or none) until the host asks for REPL
    s = Server()
    b = fwstore.load()
    if b is not None:
        s.install(b, None)
    b = None
    gc.collect()
    f = P.mem_free()
    # mpy-wasm: see fwio.collect (1 MB static heap: collect every 128 KB; a
    # large malloc'ed heap (-X heapsize) trapped on any collection: rarely)
    s.low = f // 2 if f > 4000000 else f - 131072
    if not P.U:
        gc.disable()
    P.start()
    s.serve()
