# Link layer of docs/protocol.md over fwio: frames in
# (0x00-delimited COBS, CRC-16 checked, NAK for undecodable ones), replies out,
# the duplicate cache (the last reply's wire bytes, re-sent when the host
# retransmits a seq) and the link counters. Buffers are allocated once.
import fwio
from fwio import crc16, decode, encode, scan, ticks_us


class Link:
    def __init__(self):
        self.rx = bytearray(fwio.WMAX + fwio.CH)
        self.ch = bytearray(fwio.CH)
        self.raw = bytearray(fwio.RMAX + 4)
        self.tx = bytearray(fwio.RMAX + 10)
        self.nr = bytearray(6)
        self.nb = bytearray(12)
        self.txn = self.pos = self.s = self.n = self.t0 = 0
        self.over = False
        self.last = -1
        # frames_ok bad_crc bad_frame errors dups samples infer_us request_us
        # infer_requests heap_free bad_input
        self.st = [0] * 11

    def nak(self, slot, code):
        self.st[slot] += 1
        r = self.nr
        r[0] = 0xFF
        r[2] = code
        c = crc16(r, 4)
        r[4] = c & 255
        r[5] = c >> 8
        fwio.wr(self.nb, encode(self.nb, r, 6))

    def frame(self):
        # block until a frame with a good CRC is in rx; return its length
        rx = self.rx
        ch = self.ch
        while True:
            if self.s >= self.n:
                n = fwio.rd(ch)
                if not n:
                    continue
                self.s = 0
                self.n = n
            r = scan(rx, self.pos, ch, self.s | (self.n << 8))
            if not r & 0x800:
                self.s = self.n
                self.pos = r & 0x7FF
                if self.pos > fwio.WMAX - 2:
                    self.over = True
                    self.pos = 0
                continue
            self.s = r >> 12
            n = r & 0x7FF
            self.pos = 0
            if self.over:
                self.over = False
                self.nak(2, 2)
            elif n:
                m = decode(rx, n)
                if m < 4:
                    self.nak(2, 2)
                elif crc16(rx, m - 2) != rx[m - 2] | (rx[m - 1] << 8):
                    self.nak(1, 1)
                else:
                    self.t0 = ticks_us()
                    self.st[0] += 1
                    return m

    def reply(self, typ, seq, n):
        # send raw[2:2+n] as a frame of type typ; kept for duplicates
        raw = self.raw
        raw[0] = typ
        raw[1] = seq
        c = crc16(raw, n + 2)
        raw[n + 2] = c & 255
        raw[n + 3] = c >> 8
        self.txn = encode(self.tx, raw, n + 4)
        fwio.wr(self.tx, self.txn)

    def error(self, seq, code, typ):
        self.st[3] += 1
        self.raw[2] = code
        self.raw[3] = typ
        self.reply(0xFF, seq, 2)
