# One-shot setup of fwdisp.run(), second half (the first: fwboot.py): the
# limits of docs/protocol.md 3, the buffers (allocated once) and the wiring
# of fwlink (frames in) and fwinfer (INFER). Run from its file and dropped
# after (see fwdisp.lazy). Returns what fwdisp's loop keeps.


def wire(me, S):
    import gc
    import fwlink
    import fwinfer
    crc16, decode, encode, scan, copy, F, tu, td, mf, M, U, IO, BOARD, T, rd, wr = S
    # V1: 64-byte UART ring buffer, so host frames <= 60 wire bytes; a
    # 100-byte reply holds two 30 -> 12 samples. Others: larger buffers.
    W, PM, MM, R = (60, 53, 244, 100) if IO == "uart" else (260, 250, 1024, 250)
    # K[3] collects where the V1 needs room; K[4] only at fwdisp's loop top
    me.K = (crc16, encode, wr, gc.collect if U else int, gc.collect)
    me.raw = bytearray(R + 4)
    me.tx = bytearray(R + 10)
    me.g = bytearray(MM)
    me.st = [0] * 11
    ID = bytearray([ord(c) for c in chr(len(BOARD)) + BOARD + "\x09ndyn-fw 1"])  # 1.9.2: no str.encode
    me.P = (F, PM, MM, R, ID, mf, M, U)
    fwlink.rd, fwlink.wr, fwlink.crc16, fwlink.decode, fwlink.encode, fwlink.scan = (
        rd, wr, crc16, decode, encode, scan)
    fwlink.st = me.st
    fwlink.W = W
    fwlink.rx = bytearray(W + (64 if U else 1))
    fwlink.ch = bytearray(64 if U else 1)
    fwlink.p = fwlink.s0 = fwlink.n0 = fwlink.ov = 0
    fwinfer.copy, fwinfer.tu, fwinfer.td, fwinfer.R = copy, tu, td, R
    # mpy-wasm: a collection deep in the call stack traps its VM, so fwdisp
    # collects at its loop top (1 MB static heap: every 128 KB), the
    # automatic one off; the V1 collects where it needs room
    f = mf()
    lo = 0
    if not U and f:
        lo = f // 2 if f > 4000000 else f - 131072
        gc.disable()
    return tu, td, mf, copy, MM, T, lo
