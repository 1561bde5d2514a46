# One-shot setup of fwd.run(), after fwboot: the limits of docs/protocol.md
# 3, the buffers (allocated once), the engine state S (slots:
# firmware/asm/fwfeng.py, fwfmsg.py) and me.P = (flags, max_payload,
# max_msg, max_reply, id bytes, mem_free, micropython or None, uart or None,
# feeling shipped, collect where the V1 needs room). Run from its file.
from array import array


def do(me, ID, U, mf, M, T, gc):
    # V1: 64-byte UART ring buffer, so host frames <= 60 wire bytes; a
    # 100-byte reply holds two 30 -> 12 samples. Others: larger buffers.
    W, PM, MM, R = (60, 53, 244, 100) if U else (260, 250, 1024, 250)
    me.R = R
    B = (bytearray(W + (64 if U else 1)), bytearray(MM), bytearray(R + 4), bytearray(R + 10),
         bytearray(10))
    me.g, me.raw, me.tx, me.nw = B[1], B[2], B[3], B[4]
    X, E = me.X, me.E
    if me.A:
        S = array('i', [0] * 40)
        for i in range(5):
            S[8 + i] = X(B[i], 0, 0, E[8])
    else:
        S = [0] * 40
        for i in range(5):
            S[8 + i] = B[i]
    me.rx = B[0]
    S[5] = -1
    S[13] = W | MM << 16
    for i in range(7):
        S[15 + i] = E[(3, 1, 2, 4, 5, 19, 6)[i]]
    me.S = S
    me.ID = ID
    S[37] = X(ID, 0, 0, E[8]) if me.A else ID
    S[38] = PM | R << 16
    S[39] = me.A | len(ID) << 8
    # P[9]: a collection where the V1 needs room (not on mpy-wasm: one deep
    # in the call stack traps its VM)
    me.P = (me.A, PM, MM, R, ID, mf, M, U, T, gc.collect if U else int)
