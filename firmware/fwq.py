# The serving loop's rarer half (fwd, which imports it after the boot), on
# boards without fwk.bin (the micro:bit V1's is fwv): the dispatch of the
# requests neither kernel handles, and the return of the last good model
# after a failed upload. me = fwd.


def request(me):
    # a message neither kernel handles (S[7] = type | seq << 8 | n << 16):
    # its handler fwrTT.py (TT: the type in hex, run from its file; the
    # commit's compiled by fwr10 at UP_BEGIN, me.U). A
    # handler replies and returns 0 (-1: leave for the REPL), or returns an
    # error code, for which the error reply goes here, or a model to commit
    S, P = me.S, me.P
    n = S[7]
    b = n & 63
    s = (n >> 8) & 255
    if b == 0x10:  # UP_BEGIN: the served model goes first (the V1 has no
        S[14] = S[32] = 0  # room for two, nor to compile fwr10 beside one)
        me.m = me.U = None
        P[9]()
    try:
        if b == 0x12 and me.U:  # UP_COMMIT: the handler fwr10 compiled
            e = me.U(me, b, s, n >> 16)
        elif 0x11 <= b <= 0x12:
            e = 9  # no upload going on
        else:
            e = me.lazy('fwr%02x' % b)(me, b, s, n >> 16)
        if type(e) is tuple:  # (reply type, payload length, .ndm to save)
            me.lazy('fwsave')(me, e[2])  # after the handler is dropped: heap
            me.reply(e[0], s, e[1])
            e = 0
    except ImportError:  # no such handler
        e = 4
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
        if me.m is None and e != 3:
            restore(me)
    return e


def restore(me):
    # a failed or abandoned upload: the last good model serves again (fwrst;
    # on the V1 by a restart, which loads it into a fresh heap)
    me.u = me.U = None
    me.S[34] = 0
    me.lazy('fwrst')(me)
