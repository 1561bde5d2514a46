# Frame kernels of docs/protocol.md 1 in plain Python: the reference and
# the fallback for boards without the Thumb kernels (firmware/asm/fwcasm.py
# has the same functions, ~50x faster a byte on the V1). Called through
# fwplain.call like the Thumb ones, X(a, b, c, kernel):
#   chk(rx, n): COBS-decode rx[0:n] in place, check length >= 4 and the
#     CRC-16/CCITT-FALSE; the decoded length, 2 (bad length/COBS) or 1 (CRC)
#   frm(tx, raw, n): raw[n:n+2] = CRC-16 of raw[0:n]; tx = 0x00 COBS(raw[0:n+2])
#     0x00; returns the wire length
#   scan(rx, chunk, pos | s << 11 | n << 19): append chunk[s:n] to rx[pos:]
#     up to a 0x00; returns newpos | 0x800 if a 0x00 ended it | next_s << 12
#   copy(dst, src, o | s << 14 | n << 21): bytes o..o+n-1 of dst = bytes
#     s..s+n-1 of src (o < 16384, s < 128), for any buffers (bytearray, array('f'): their raw
#     bytes, as the Thumb copy does; the V1 has no memoryview)
from struct import pack_into, unpack_from


def crc16(b, n):
    c = 0xFFFF
    for i in range(n):
        c ^= b[i] << 8
        for _ in range(8):
            c <<= 1
            if c & 0x10000:
                c ^= 0x1021
        c &= 0xFFFF
    return c


def decode(b, n):
    i = 0
    j = 0
    while i < n:
        code = b[i]
        i += 1
        if code == 0:
            return 0
        for _ in range(code - 1):
            if i >= n or b[i] == 0:
                return 0
            b[j] = b[i]
            i += 1
            j += 1
        if code != 0xFF and i < n:
            b[j] = 0
            j += 1
    return j


def encode(d, s, n):
    d[0] = 0
    cp = 1
    j = 2
    code = 1
    for i in range(n):
        v = s[i]
        if v:
            d[j] = v
            j += 1
            code += 1
        if v == 0 or code == 0xFF:
            d[cp] = code
            cp = j
            j += 1
            code = 1
    d[cp] = code
    d[j] = 0
    return j + 1


def chk(b, n, _=0):
    n = decode(b, n)
    if n < 4:
        return 2
    return n if crc16(b, n - 2) == b[n - 2] | (b[n - 1] << 8) else 1


def frm(d, s, n):
    c = crc16(s, n)
    s[n] = c & 255
    s[n + 1] = c >> 8
    return encode(d, s, n + 2)


def scan(rx, ch, c):
    pos = c & 0x7FF
    i = (c >> 11) & 0xFF
    n = c >> 19
    while i < n:
        v = ch[i]
        i += 1
        if v == 0:
            return pos | 0x800 | (i << 12)
        rx[pos] = v
        pos += 1
    return pos


def copy(d, s, c):
    o = c & 0x3FFF
    i = (c >> 14) & 0x7F
    for k in range(c >> 21):
        pack_into('B', d, o + k, unpack_from('B', s, i + k)[0])


def ticks_us():
    # CPython stand-in for time.ticks_us (unit tests only)
    from time import perf_counter
    return int(perf_counter() * 1000000)


def ticks_diff(a, b):
    return a - b


def mem_free():
    # CPython stand-in for gc.mem_free (unit tests only)
    return 0


def eng(S, ch, c):
    # the frame engine (firmware/asm/fwfeng.py, the same contract): line
    # bytes ch[s:n] (c = s | n << 8) -> 0 or action | wire length << 4
    s = c & 255
    n = c >> 8
    rx = S[8]
    while s < n:
        e = scan(rx, ch, S[1] | s << 11 | n << 19)
        if not e & 0x800:
            p = e & 0x7FF
            if p > (S[13] & 0xFFFF) - 2:
                S[2] = 1
                p = 0
            S[1] = p
            break
        s = e >> 12
        S[0] = s
        f = e & 0x7FF
        S[1] = 0
        if not (S[2] or f):
            continue
        if S[2]:
            S[2] = 0
            f = 2
        else:
            f = chk(rx, f)
        if f < 4:  # a NAK: seq 0, not cached
            S[22 + f] += 1
            rx[0] = 255
            rx[1] = rx[3] = 0
            rx[2] = f
            return 2 | frm(S[12], rx, 4) << 4
        S[22] += 1
        t = rx[0]
        q = rx[1]
        f -= 4
        if q == S[5] and S[6]:
            S[26] += 1
            return 1 | S[6] << 4
        S[5] = q
        b = t & 63
        S[7] = b | q << 8
        e = 0
        if t & 0x80:
            e = 4
        elif S[3] and S[4] != b:
            if b == 1:  # HELLO: a new session drops a half-received message
                S[3] = 0
            else:
                e = 9
        if not e and S[3] + f > S[13] >> 16:
            e = 2
        if e:
            S[3] = 0
            return _err(S, e, b)
        copy(S[9], rx, S[3] | 2 << 14 | f << 21)
        S[3] += f
        S[4] = b
        if t & 0x40:
            return _rep(S, 0xFE, 0, 1)
        f = S[3]
        S[3] = 0
        S[7] |= f << 16
        if b != 4:
            return 4
        if not S[14]:
            return _err(S, 3, 4)
        p = S[10]
        p[0] = f & 255
        p[1] = f >> 8
        e = S[19](S[14], S[9], p)
        if e < 0:
            return _err(S, -e, 4)
        k = e & 255
        S[27] += k
        S[30] += 1
        r = (e >> 8) // k if k else 1
        for i in range(k):
            if p[2 + i * r]:
                S[31] += 1
        return _rep(S, 0x84, e >> 8, 3)
    S[0] = n
    return 0


def _err(S, e, b):
    S[25] += 1
    p = S[10]
    p[2] = e
    p[3] = b
    return _rep(S, 0xFF, 2, 1)


def _rep(S, t, n, a):
    p = S[10]
    p[0] = t
    p[1] = (S[7] >> 8) & 255
    S[6] = frm(S[11], p, n + 2)
    return a | S[6] << 4
