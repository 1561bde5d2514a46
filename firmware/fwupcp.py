# UP_COMMIT on boards with RAM to spare (docs/protocol.md 4; compiled by
# fwr10 at UP_BEGIN, run by fwd; the V1's is fwd.v1): the upload in me.u is
# checked and installed (fwplain: CRC-32, bounds) against the hash of
# UP_BEGIN and handed to fwd to be saved atomically (fwsave); restart = 0.
from struct import pack_into, unpack_from


def do(me, b, s, n):
    S = me.S
    u = me.u
    if u is None or S[36] != len(u) or len(u) < 14:
        return 9
    me.u = None
    S[34] = 0
    if unpack_from('<I', u, len(u) - 4)[0] != me.D or __import__('fwplain').install(me, u):
        return 7
    pack_into('<IBBBB', me.raw, me.RAW + 2, me.D, u[6], u[7], u[8], 0)
    return 0x92, 8, u  # fwd saves it (fwsave) and replies
