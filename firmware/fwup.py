# Model upload of docs/protocol.md 4 (UP_BEGIN, UP_DATA, UP_COMMIT), run by
# fwdisp from this file only during an upload (fwdisp.lazy) and with the old
# model dropped meanwhile (the V1 cannot hold two models and this code):
# UP_BEGIN total u32, crc32 u32 reserves the buffer; UP_DATA offset u32 +
# bytes, in order; UP_COMMIT parses it (fwmodel: CRC-32, bounds, the hash
# of UP_BEGIN), serves it, then saves it atomically (fwstore). On failure
# fwdisp serves the last good model from the slot again.
# do(me, type, seq, n) -> 0 (replied) or an error code, like fwtrain.do.
from struct import unpack_from, pack_into

N = C = 0


def do(me, b, s, n):
    global N, C
    g = me.g
    if b == 0x10:
        me.u = None
        t, C = unpack_from('<II', g, 0)
        if n != 8 or t > 8192:
            return 2
        me.u = bytearray(t)
        N = 0
        k = 0
    else:
        u = me.u
        if u is None:
            return 9
        if b == 0x11:
            n -= 4
            if n < 0 or unpack_from('<I', g, 0)[0] != N:
                return 9
            if N + n > len(u):
                return 2
            for i in range(n):
                u[N + i] = g[4 + i]
            N += n
            k = 0
        else:
            if N != len(u):
                return 9
            me.u = None
            e = me.lazy('fwinst')['install'](me, u, C)
            if e:
                return e
            me.lazy('fwstore')['save'](u)
            m = me.m
            pack_into('<IBBB', me.raw, 2, m.crc, m.d_in, m.d_out, m.k)
            k = 7
    me.reply(0x80 | b, s, k)
    return 0
