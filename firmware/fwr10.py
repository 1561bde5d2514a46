# UP_BEGIN (docs/protocol.md 4), run by fwd from this file: total u32,
# crc32 u32. The served model is dropped (the V1 cannot hold two models
# and the upload) and the buffer reserved: me.u, with the model hash in
# me.D; the frame engine's msg kernel takes the UP_DATA chunks into it
# (S[34] its address, S[35] its length, S[36] bytes received).
from struct import unpack_from


def do(me, b, s, n):
    S = me.S
    S[14] = S[32] = 0
    me.m = None
    me.P[9]()
    t, me.D = unpack_from('<II', me.g, me.G0)
    if n != 8 or t > 8192:
        return 2
    me.u = u = bytearray(t)
    S[34] = me.X(u, 0, 0, me.E[8]) if me.A else u
    S[35] = t
    S[36] = 0
    me.reply(0x90, s, 0)
    return 0
