# The model store at boot (fwd.run): the newest whole model of the two
# slots (fwslot), or None. Remembers in me.K which slot that is and in me.G
# its gen, so fwsave writes the other one. Run from this file (fwd.lazy).


def do(me):
    s = me.lazy('fwslot')
    a, b = s(me, 0, 0)[0], s(me, 1, 0)[0]
    i = 1 if a < 0 or (b >= 0 and (b - a) & 255 < 128) else 0
    me.K, me.G = i, max((a, b)[i], 0)
    return s(me, i, 1)[1] if max(a, b) >= 0 else None
