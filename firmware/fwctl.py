# The rare requests of docs/protocol.md 4: HELLO, STATS, QSCALE, REPL. Run
# by fwdisp from this file when one arrives and dropped after (fwdisp.lazy):
# on the micro:bit V1 code is what costs heap, and these come once a
# session. State lives in fwdisp (me): me.st counters, me.q int16 scales,
# me.P = (flags, max_payload, max_msg, max_reply, id bytes, mem_free,
# micropython module or None, uart or None).
# do(me, type, seq, n) -> 0 (replied), -1 (leave for the REPL) or an error.
from struct import pack_into, unpack_from


def do(me, b, s, n):
    m = me.m
    p = me.raw
    F, PM, MM, R, ID, mf, M, U = me.P
    k = 0
    if b == 1:  # HELLO: resets the session
        me.q = None
        me.K[3]()
        h = (m.crc, m.d_in, m.d_out, m.k) if m else (0, 0, 0, 0)
        pack_into('<BBBBBBII', p, 2, 1, (m is not None) | F, h[1], h[2], h[3], 0, h[0], mf())
        pack_into('<HHH', p, 16, PM, MM, R)
        for i in range(len(ID)):
            p[22 + i] = ID[i]
        k = 20 + len(ID)
    elif b == 2:  # STATS
        me.K[3]()
        st = me.st
        st[9] = mf()
        for i in range(11):
            pack_into('<I', p, 2 + 4 * i, st[i] & 0xFFFFFFFF)
        k = 44
    elif b == 3:  # QSCALE: d_in x (offset, scale) f32
        if m is None:
            return 3
        if n != 8 * m.d_in:
            return 2
        me.q = None
        me.q = unpack_from('<%df' % (2 * m.d_in), me.g, 0)
    elif b == 5:  # REPL: answer, give the line back to the REPL
        me.reply(0x85, s, 0)
        if M:
            M.kbd_intr(3)
        if U:
            U.init(115200)
        return -1
    else:
        return 4
    me.reply(0x80 | b, s, k)
    return 0
