# The kernels fwd calls on boards without fwk.bin (every board but the
# micro:bit V1, whose Thumb kernels fwv1 binds): fwcobs + fwplain, plain
# Python with the same bytes, in the order of E (fwd). Run from this file
# and dropped after (fwd.lazy).


def do(me):
    from fwcobs import eng, chk, frm, scan, copy
    from fwplain import inf, crc32, msg, trn, call
    me.A = 0
    me.X = call
    me.E = (eng, chk, frm, scan, copy, inf, crc32) + (0,) * 7 + (msg, 0, 0, 0, 0, trn)
