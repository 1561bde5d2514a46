# Installing a model in fwdisp (me), run from this file when a model
# changes (boot, upload, after a failed upload) and dropped after: on the
# micro:bit V1 code costs heap as long as it is kept.


def install(me, b, c):
    # serve the .ndm in bytearray b (hash c; None: trust it): 0 or an error
    # code. The old model goes first (RAM); on failure the last good returns.
    me.m = me.x = me.y = None
    me.K[3]()
    import fwmodel
    from array import array
    n = fwmodel.Model()
    e = n.load(b)
    if not e and c is not None and n.crc != c:
        e = 7
    if e:
        b = n = None
        if c is not None:
            restore(me)
        return e
    me.x = array('f', range(n.d_in))
    me.y = array('f', range(n.d_out))
    me.m = n
    return 0


def restore(me):
    # the last good model from the slot, unless one is served
    me.u = None
    if me.m is None:
        b = me.lazy('fwstore')['load']()
        if b is not None:
            install(me, b, None)
