# Frames in, docs/protocol.md 1-2: line chunks (at most 64 bytes on the
# V1, its UART ring buffer) are scanned into rx up to a 0x00, COBS-decoded
# and CRC-checked by the kernels; a frame that fails is answered with a NAK
# (ERROR bad CRC / bad length, seq 0, not cached) and counted. fwboot sets
# the kernels, the line and the buffers here once; state is module-level
# because frame() returns after every good frame. Own module: the V1
# compiles each module on import and cannot compile large ones.
rd = wr = o = rx = ch = crc16 = decode = encode = scan = st = None
W = p = s0 = n0 = ov = 0
nk = bytearray(6)
nw = bytearray(10)


def frame():
    # block until rx holds a good frame; return its length (>= 4)
    global p, s0, n0, ov
    while True:
        if s0 >= n0:
            n0 = rd(ch) or 0
            s0 = 0
            continue
        e = scan(rx, p, ch, s0 | (n0 << 8))
        if not e & 0x800:
            s0 = n0
            p = e & 0x7FF
            if p > W - 2:
                ov = 1
                p = 0
            continue
        s0 = e >> 12
        f = e & 0x7FF
        p = 0
        if not (ov or f):
            continue
        if not ov:
            f = decode(rx, f)
        e = 2 if ov or f < 4 else (1 if crc16(rx, f - 2) != rx[f - 2] | (rx[f - 1] << 8) else 0)
        ov = 0
        if not e:
            return f
        st[e] += 1
        nk[0] = 255
        nk[2] = e
        e = crc16(nk, 4)
        nk[4] = e & 255
        nk[5] = e >> 8
        wr(nw, encode(nw, nk, 6))


def out(b, n):
    # the board's writer (fwline sets o at boot: microbit.uart or stdout.buffer;
    # the static check only sees its None placeholder above)
    o.write(b[:n])  # type: ignore[attr-defined]


def boot(L, rd, wr):
    # fwboot, fwline then fwwire, one at a time (the V1 reads each file in one
    # block and compiles it: both at once do not fit). Here, not in fwdisp:
    # the V1 imports fwdisp only while its file stays this small.
    S = L.lazy('fwboot')['setup'](L, rd, wr)
    S = L.lazy('fwline')['line'](S, rd, wr)
    if S[10]:  # the V1 (not mpy-wasm: a collection this deep traps it)
        __import__('gc').collect()
    return L.lazy('fwwire')['wire'](L, S)
