# UP_BEGIN (docs/protocol.md 4), run by fwd from this file: total u32,
# crc32 u32 (the model hash). fwd has dropped the served model first (the
# V1 cannot hold two models: its upload is fwd.v1's, this file is for the
# other boards). The commit's handler is compiled now, before the buffer is
# reserved (me.U: fwupcp), so no file is compiled until the upload ends.
# The chunks go into the RAM buffer me.u, filled by the frame engine's msg
# kernel (S[34], S[35] its length, S[36] bytes received); me.D the model
# hash.
from struct import unpack_from


def do(me, b, s, n):
    S = me.S
    me.U = me.lazy('fwupcp')
    t, me.D = unpack_from('<II', me.g, me.G0)
    if n != 8 or t > 8192:
        return 2
    me.u = u = bytearray(t)
    S[34] = u
    S[35] = t
    S[36] = 0
    me.reply(0x90, s, 0)
    return 0
