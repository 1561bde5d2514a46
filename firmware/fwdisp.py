# Dispatcher of docs/protocol.md 4: reassembles fragments, answers HELLO,
# STATS, QSCALE, INFER, UP_BEGIN/DATA/COMMIT and REPL; drives fwmodel (the
# forward pass) and fwstore (the atomic model slot). Received bytes are only
# ever parsed as numbers. Error codes: 2 bad length, 3 no model, 4 unknown
# type, 6 out of memory, 7 bad model, 9 bad state (5 bad input is per sample).
import gc
import struct
from array import array
import fwio as P
from fwproto import Link
import fwmodel
import fwstore
from fwio import copy, FAST


def _gc():
    # Only where RAM is scarce (the V1). On the MicroPython WASI build (mpy-wasm)
    # objects in the upper part of its 1 MB heap get clobbered (a pure-Python
    # loop that fills the heap crashes the VM; the same with -X heapsize does
    # not), so there the serving loop collects whenever 128 KB are in use and
    # allocations stay in the low part of the heap.
    if P.U:
        gc.collect()


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
        _gc()
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
            rc = self.infer(s, n) if b == 4 else self.do(b, s, n)
            if rc < 0:
                return
            if rc:
                L.error(s, rc, b)

    def do(self, b, s, n):
        L = self.L
        p = L.raw
        g = self.g
        m = self.m
        k = 0
        if b == 1:  # HELLO
            self.q = False
            self.u = None
            _gc()
            h = 0
            p[4] = p[5] = p[6] = p[7] = 0
            if m is not None:
                h = m.crc
                p[4] = m.d_in
                p[5] = m.d_out
                p[6] = m.k
            p[2] = 1
            p[3] = (m is not None) | (2 if FAST else 0)
            struct.pack_into('<IIHHH', p, 8, h, P.mem_free(), P.PMAX, P.MMAX, P.RMAX)
            k = 20
            for t in (P.BOARD, "ndyn-fw 1"):
                p[k + 2] = len(t)
                k += 1
                for c in t:
                    p[k + 2] = ord(c)
                    k += 1
        elif b == 2:  # STATS
            _gc()
            L.st[9] = P.mem_free()
            for i in range(11):
                struct.pack_into('<I', p, 2 + 4 * i, L.st[i] & 0xFFFFFFFF)
            k = 44
        elif b == 3:  # QSCALE
            if m is None:
                return 3
            if n != 8 * m.d_in:
                return 2
            for j in range(m.d_in):
                self.qo[j], self.qs[j] = struct.unpack_from('<ff', g, 8 * j)
            self.q = True
        elif b == 5:  # REPL
            L.reply(0x85, s, 0)
            P.leave()
            return -1
        elif b == 0x10:  # UP_BEGIN
            if n != 8:
                return 2
            t, self.uc = struct.unpack_from('<II', g, 0)
            self.u = None
            _gc()
            if t > 8192:
                return 2
            self.u = bytearray(t)
            self.un = 0
        elif b == 0x11:  # UP_DATA
            u = self.u
            if u is None or n < 4 or struct.unpack_from('<I', g, 0)[0] != self.un:
                return 9
            n -= 4
            if self.un + n > len(u):
                return 2
            copy(u, self.un, g, 4 | (n << 16))
            self.un += n
        elif b == 0x12:  # UP_COMMIT
            u = self.u
            if u is None or self.un != len(u):
                return 9
            self.u = None
            rc = self.install(u, self.uc)
            if rc:
                return rc
            fwstore.save(u)
            m = self.m
            struct.pack_into('<IBBB', p, 2, m.crc, m.d_in, m.d_out, m.k)
            k = 7
        else:
            return 4
        L.reply(0x80 | b, s, k)
        return 0

    def infer(self, s, n):
        # INFER: fmt byte, then samples (float32 or int16); per-sample status
        L = self.L
        m = self.m
        if m is None:
            return 3
        g = self.g
        f = g[0]
        di = m.d_in
        do = m.d_out
        w = (4 if f == 0 else 2) * di
        if f > 1:
            return 2
        if f and not self.q:
            return 9
        n -= 1
        r = 1 + 4 * do
        k = n // w
        if n != k * w or k * r > P.RMAX:
            return 2
        x = self.x
        y = self.y
        p = L.raw
        st = L.st
        tu = P.ticks_us
        a = 1
        o = 2
        us = 0
        for i in range(k):
            if f:
                for j in range(di):
                    v = g[a + 2 * j] | (g[a + 2 * j + 1] << 8)
                    x[j] = self.qo[j] + self.qs[j] * (v - 65536 if v > 32768 else v) if v != 32768 else float('nan')
            elif FAST:
                copy(x, 0, g, a | (w << 16))
            else:
                for j in range(di):
                    x[j] = struct.unpack_from('<f', g, a + 4 * j)[0]
            t0 = tu()
            rc = m.infer(x, y)
            us += P.ticks_diff(tu(), t0)
            p[o] = rc
            if rc:
                st[10] += 1
                for j in range(o + 1, o + r):
                    p[j] = 0
            elif FAST:
                copy(p, o + 1, y, 4 * do << 16)
            else:
                for j in range(do):
                    struct.pack_into('<f', p, o + 1 + 4 * j, y[j])
            o += r
            a += w
        L.reply(0x84, s, k * r)
        st[5] += k
        st[6] += us
        st[8] += 1
        st[7] += P.ticks_diff(tu(), L.t0)
        return 0


def run():
    # boot: serve the last good model (or none) until the host asks for REPL
    s = Server()
    b = fwstore.load()
    if b is not None:
        s.install(b, None)
    b = None
    gc.collect()
    s.low = P.mem_free() - 131072
    if not P.U:
        gc.disable()
    P.start()
    s.serve()
