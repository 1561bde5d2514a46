# The micro:bit V1's upload mode (fwd: after UP_BEGIN the V1 restarts
# into it, with no model and these handlers resident; compiling one beside
# a model needs more of its heap in one piece than serving leaves): UP_BEGIN,
# UP_COMMIT (UP_DATA is the msg kernel's), an error reply for the rest, and
# a restart after a failed or abandoned upload. me = fwd.


def request(me):
    # the message in S[7] (type | seq << 8 | n << 16): its handler's reply,
    # or the error reply; -1 to leave for the REPL
    S = me.S
    n = S[7]
    b = n & 63
    s = (n >> 8) & 255
    try:
        e = do(me, b, s, n >> 16)
    except MemoryError:
        e = 6
    except OSError:
        e = 6
    except Exception:
        e = 9
    if e > 0:
        S[25] += 1
        me.raw[me.RAW + 2] = e
        me.raw[me.RAW + 3] = b
        me.reply(0xFF, s, 2)
        if e != 3:  # a failed upload or another request: serve again
            restore(me)
    return e


def restore(me):
    # a failed or abandoned upload: the last good model serves again, by a
    # restart (the V1 installs a model only into the fresh heap of a boot)
    me.restore(me)


def do(me, b, s, n):
    # UP_BEGIN and UP_COMMIT (docs/protocol.md 4; fwr10 + fwupcp elsewhere),
    # else E_UNKNOWN. The upload goes into the RAM buffer u that the msg kernel
    # fills (S[34] its address, S[35] its length, S[36] bytes received);
    # UP_COMMIT checks it (CRC-32, val: as fwv1m's install at boot; the hash
    # D of UP_BEGIN), answers (restart = 1), writes it into the slot not
    # holding the last model (fwslot's layout; a power cut tears only that
    # slot, and the boot falls back to the other) and restarts: the V1
    # installs a model only into the fresh heap of a boot.
    from struct import pack_into, unpack_from
    S, X, E, P = me.S, me.X, me.E, me.P
    if b == 5:
        return me.request(me)  # REPL
    if b == 16:
        t, me.D = unpack_from('<II', me.g, me.G0)
        if n != 8 or t > 4096:
            return 2
        me.u = u = bytearray(t)
        S[34] = X(u, 0, 0, E[8])
        S[35] = t
        S[36] = 0
        me.reply(0x90, s, 0)
        return 0
    u = me.u
    if b != 18:
        return 9 if b == 17 else 4
    if u is None or S[36] != len(u) or len(u) < 14:
        return 9
    t = len(u)
    S[34] = 0
    c = __import__('array').array('I', [0])
    X(u, t, c, E[6])
    T = bytearray(4 * (44 + u[8]))  # val needs the fixed slots and the gains
    X(T, 0, 0, E[9])
    X(T, 0, 0, E[10])
    pack_into('<i', T, 24, X(T, 0, 0, E[8]) + 176)
    me.u = None
    if c[0] != 0x2144DF1C or unpack_from('<I', u, t - 4)[0] != me.D or X(T, u, t - 4, E[7]):
        return 7
    pack_into('<IBBBB', me.raw, me.RAW + 2, me.D, u[6], u[7], u[8], 1)
    me.reply(0x92, s, 8)  # before the write: it may move fwk.bin's pages
    f = open("ndm_" + "ab"[1 - me.K], "wb")
    f.write(bytes([(me.G + 1) & 255, t & 255, t >> 8]))
    f.write(u)
    f.close()
    me.restore(me)
