# Frame primitives of docs/protocol.md 1 in plain Python: the reference and
# the fallback for boards without asm_thumb (fwcasm has the same functions,
# ~50x faster a byte on the V1; fwio picks one at import):
#   crc16(buf, n): CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of buf[0:n]
#   decode(buf, n): COBS-decode buf[0:n] in place; its length, 0 if malformed
#   encode(dst, src, n): dst = 0x00 COBS(src[0:n]) 0x00; returns its length
#   scan(rx, pos, chunk, s | n << 8): append chunk[s:n] to rx[pos:] up to a
#     0x00; returns newpos | 0x800 if a 0x00 ended the frame | next_s << 12
#   copy(dst, d, src, s | n << 16): bytes d..d+n-1 of dst = bytes s..s+n-1
#     of src, for any buffers (bytearray, array('f'): their raw bytes, as the
#     Thumb copy does; the V1 has neither memoryview nor slice assignment)
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

def scan(rx, pos, ch, sn):
    i = sn & 0xFF
    n = sn >> 8
    while i < n:
        v = ch[i]
        i += 1
        if v == 0:
            return pos | 0x800 | (i << 12)
        rx[pos] = v
        pos += 1
    return pos

def copy(d, o, s, sn):
    i = sn & 0xFFFF
    for k in range(sn >> 16):
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
