# UP_COMMIT (docs/protocol.md 4), run by fwd from this file: the whole
# upload is checked (CRC-32, bounds, the hash of UP_BEGIN), saved atomically
# (fwsave) and served; answers model_hash u32, d_in, d_out, k, restart u8.
# On the micro:bit V1 the check is the Thumb installer's (as fwv1m runs it
# at boot) and the board then restarts (restart = 1): it installs a model
# only into the fresh heap of a boot, and the host waits for its HELLO.
# Elsewhere it is installed here (fwplain). On failure fwd serves the last
# good model again.
from struct import pack_into, unpack_from


def do(me, b, s, n):
    u = me.u
    S = me.S
    if u is None or S[36] != len(u) or len(u) < 14:
        return 9
    me.u = None
    S[34] = 0
    if unpack_from('<I', u, len(u) - 4)[0] != me.D:
        return 7
    if me.A:  # the checks of fwv1m's install, without keeping the model
        T = bytearray(4 * (44 + 5 * u[6] + 4 * u[8]))
        pack_into('<i', T, 28, me.B)
        if me.X(T, u, len(u) - 4, me.E[15]):
            return 7
        T = None
    elif __import__('fwplain').install(me, u):
        return 7
    me.lazy('fwsave')(me, u)
    pack_into('<IBBBB', me.raw, me.RAW + 2, me.D, u[6], u[7], u[8], 1 if me.A else 0)
    me.reply(0x92, s, 8)
    if me.A:
        me.lazy('fwrst')(me, 1)
    return 0
