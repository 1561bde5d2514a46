# The serving loop of docs/protocol.md. Every frame goes through the frame
# engine (firmware/asm/fwfeng.py: scan, COBS + CRC check, NAK, duplicate
# cache, fragments, INFER, error replies); this loop moves the line's bytes
# to it, sends what it made, and handles the rare requests it hands back.
# On the micro:bit V1 (MicroPython 1.9.2, ~9 KB heap) every line of Python
# kept costs heap, so the engine and the kernels it calls are Thumb code
# that runs in place from the file fwk.bin in flash (fwxa.X calls it; no
# heap); on other boards they are fwcobs + fwplain (plain Python, the same
# bytes). A kernel is called as X(a, b, c, E[i]): E[i] is its address on
# the V1, the Python function elsewhere. E = (eng, chk, frm, scan, copy,
# inf, crc32, val, addr, liba, libb, ch, at, ro, msg, ins, xp, ktab, wir,
# trn); S is the engine's
# state (slots: fwfeng.py, fwfmsg.py; 22-31 the STATS counters). The msg
# kernel answers HELLO, STATS, QSCALE, UP_DATA, PULL and TRAIN (feeling:
# the trn kernel).
# Code that runs once or rarely is run from its file and dropped after
# (lazy): the boot (fwv1f, fwv1, fwv1m on the V1; fwgo:
# fwkern, fwboot, fwbufs, fwload, fwslot elsewhere), fwrTT (the handler of request type TT,
# see fwq: REPL, UP_BEGIN), fwupcp + fwsave (UP_COMMIT), fwrst (serve the
# last good model again).
# Received bytes are only parsed as numbers; only the model slot is written.
# Hooks: do(me, type, seq, n) with me = this module: me.m (model: kernel
# handle, .ndm bytes, ...), me.g (message), me.raw (reply payload at 2),
# me.reply(type, seq, n); they return 0 (replied), -1 (leave) or an error.
m = u = U = D = K = G = B = g = raw = tx = nw = rx = lb = S = X = E = P = wr = o = None
A = R = RAW = G0 = A0 = 0


def out(b, n):
    # the board's writer (fwboot sets o: stdout.buffer): buffer b, n bytes
    o.write(b[:n])  # type: ignore[attr-defined]


def outa(a, n):
    # the V1's writer (fwv1f sets o: microbit.uart): n bytes at address a,
    # in the buffer arena raw (at address A0)
    o.write(raw[a - A0:a - A0 + n])  # type: ignore[index]


def reply(t, s, n):
    # send the payload raw[RAW+2:RAW+2+n] as frame type t, seq s; cached for
    # duplicates (S[6]). S[10], S[11]: the raw and tx buffers as the kernels
    # take them (the V1: addresses in the arena raw; elsewhere the buffers)
    raw[RAW] = t
    raw[RAW + 1] = s
    S[6] = X(S[11], S[10], n + 2, E[2])
    wr(S[11], S[6])


def lazy(n):
    # the function do of module n, run from its file: dropped again when
    # done with (the V1 (1.9.2) has no sys.modules, so an imported module
    # would stay for good). CPython tests import it (firmware/ is on
    # sys.path). The source is read in one block and compiled at once, which
    # on the V1 takes a few KB of heap in few pieces: keep every lazy file
    # small (under ~1 KB compacted); on the V1 (A) a collection after it,
    # so that what it makes goes low (not elsewhere: mpy-wasm's collector
    # does not see the locals of deep calls, it frees them).
    try:
        f = open(n + '.py')
    except OSError:
        return __import__(n).do
    try:  # the micro:bit: read just the file (read() grows a 1 KB buffer)
        k = __import__('os').size(n + '.py')
    except Exception:
        k = -1
    d = {}
    exec(f.read(k), d)
    f.close()
    if A:
        __import__('gc').collect()
    return d['do']


def run(rd=None, w=None, r=None):
    # serve until the host asks for the REPL. rd(buf) -> bytes read (0 or
    # None: none yet), w(buf, n) sends buf[:n]; default: the board's line.
    # r: what the micro:bit V1's boot returned (main.py)
    me = __import__('fwd')
    r = r or lazy('fwgo')(me, rd, w)  # the boot (the V1's: main.py)
    rd, ch, tu, td, mf, gc, lo, Q = r
    C = P[9]
    C()
    s0 = n0 = 0
    while True:
        if s0 >= n0:
            n0 = rd(ch) or 0
            s0 = 0
            continue
        t0 = tu()
        e = X(S, ch, s0 | n0 << 8, E[0])
        s0 = S[0]
        a = e & 15
        if a and lo and mf() < lo:  # mpy-wasm: collect here, not deep in a call
            gc()
        if a == 2:  # a NAK
            wr(S[12], e >> 4)
        elif a & 1:  # a reply (3: INFER, timed)
            if a == 3:
                S[28] += td(tu(), t0)
            wr(S[11], e >> 4)
            if a == 3:
                S[29] += td(tu(), t0)
        elif a == 4:  # a whole message: the msg kernel's, else Python's
            b = S[7] & 63
            if u is not None and not 0x10 <= b <= 0x12:
                Q.restore(me)  # anything but UP_* ends an upload
            if b < 3:
                C()  # HELLO and STATS report the heap after a collection
            e = X(S, mf(), 0, E[14])
            if e != 4:
                wr(S[11], e >> 4)
            elif Q.request(me) < 0:
                return


def request(me):
    # the V1's rarer requests (fwq's elsewhere): REPL; UP_BEGIN, which
    # restarts into upload mode (fwv: no model, its handlers resident, as the
    # V1 cannot compile them beside one); an error reply for the rest.
    # Resident: compiling even a small handler needs ~2 KB in one piece.
    n = S[7]
    b = n & 63
    s = (n >> 8) & 255
    if b == 5:
        reply(0x85, s, 0)
        P[6].kbd_intr(3)
        P[7].init(115200)
        return -1
    if b == 0x10:
        open('ndm_u', 'w').close()
        raw[RAW + 2] = 1
        reply(0x90, s, 1)
        restore(me)
    S[25] += 1
    raw[RAW + 2] = 4
    raw[RAW + 3] = b
    reply(0xFF, s, 2)
    return 4


def restore(me):
    # restart once the last reply has left the V1's UART
    __import__('time').sleep_ms(20)
    __import__('microbit').reset()
