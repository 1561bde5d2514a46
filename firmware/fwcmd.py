# Control requests of docs/protocol.md 4 (split from fwdisp so each module
# compiles in the V1's small heap): HELLO, STATS, QSCALE, REPL and the model
# upload (UP_BEGIN/DATA/COMMIT: checked by fwmodel, saved by fwstore).
import struct
import fwio as P
import fwstore
from fwio import copy, FAST
# PULL, TRAIN, TRAIN_COMMIT (feeling) go to fwtrain.do where the image ships
# it (not in the closure deploy follows: the V1's 29 KB hold no more); terse
# lines because every byte here costs the V1's file system.
try:T=__import__('fwtrain').do
except:T=lambda*a:4


def do(self, b, s, n):
    # HELLO, STATS, QSCALE, REPL, UP_BEGIN/DATA/COMMIT for Server self;
    # replies, or returns an error code (-1: leave for the REPL)
    L = self.L
    p = L.raw
    g = self.g
    m = self.m
    k = 0
    if b == 1:  # HELLO
        self.q = False
        self.u = None
        P.collect()
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
        P.collect()
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
        P.collect()
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
        return T(self,b,s,n)
    L.reply(0x80 | b, s, k)
    return 0
