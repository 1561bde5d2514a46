# The serving loop of docs/protocol.md: duplicate cache, fragments and the
# dispatch of requests, over fwlink (frames in, NAK) and fwinfer (INFER).
# On the micro:bit V1 (MicroPython 1.9.2, ~9 KB heap) code is what costs
# RAM (~1.5 B a byte of minified source, kept as long as the board runs;
# compiling needs about twice that), so only the serving path is resident
# (main.py imports it, innermost first) and code that runs once or rarely
# is run from its file and dropped after (lazy): fwboot + fwwire (setup), fwctl
# (HELLO, STATS, QSCALE, REPL), fwup (model upload, the old model dropped
# meanwhile), fwstore (the model slot), fwinst (install a model). Per-byte
# work: Thumb kernels (fwkl; fwcobs: the same bytes in plain Python where
# asm_thumb is missing).
# Received bytes are only parsed as numbers; only the model slot is written.
# Hooks (fwctl, fwup, and fwtrain for PULL/TRAIN/TRAIN_COMMIT): do(me, type,
# seq, n) with me = this module: me.m (model), me.g (message), me.L.raw
# (reply payload at 2), me.L.reply(type, seq, n); they return 0 (replied)
# or an error code.
m = x = y = g = raw = tx = L = K = u = q = st = P = None
txn = 0


def reply(t, s, n):
    # send raw[2:2+n] as frame type t, seq s; kept in tx for duplicates.
    # K = (crc16, encode, write, collect, collect at the loop top): fwboot
    global txn
    raw[0] = t
    raw[1] = s
    c = K[0](raw, n + 2)
    raw[n + 2] = c & 255
    raw[n + 3] = c >> 8
    txn = K[1](tx, raw, n + 4)
    K[2](tx, txn)


def lazy(n):
    # module n's functions in a dict that can be dropped again: the V1
    # (1.9.2) has no sys.modules, so an imported module would stay for good.
    # CPython tests import it (firmware/ is on sys.path). The source is read
    # in one block: keep every lazy file small (V1: under ~1 KB minified).
    try:
        f = open(n + '.py')
    except OSError:
        return __import__(n).__dict__
    d = {}
    exec(f.read(), d)
    f.close()
    return d


def restore():
    # serve the last good model from the slot again (boot, after an upload
    # ended): fwinst, run from its file
    lazy('fwinst')['restore'](L)


def run(rd=None, wr=None):
    # serve until the host asks for the REPL. rd(buf) -> bytes read (0 or
    # None: none yet), wr(buf, n) sends buf[:n]; default: the board's line
    # (fwcfg.IO: "uart" = microbit.uart, "stdin" = sys.stdin/stdout.buffer)
    global m, x, y, L, u, q
    import fwlink
    import fwinfer
    m = u = q = None
    L = __import__('fwdisp')
    S = fwlink.boot(L, rd, wr)
    tu, td, mf, copy, MM, T, lo = S
    S = None
    K[3]()
    import fwmodel  # resident, but after the setup: its compile fits then
    restore()  # the last good model from the slot
    K[3]()  # (not on mpy-wasm: a collection deep in the call stack traps it)
    rx = fwlink.rx
    st = L.st
    frame = fwlink.frame
    infer = fwinfer.infer
    ml = mt = 0
    la = -1
    D = None
    while True:
        f = frame()
        if lo and mf() < lo:  # mpy-wasm, per frame: mem_free walks the heap
            K[4]()
        t0 = tu()
        st[0] += 1
        t = rx[0]
        s = rx[1]
        n = f - 4
        if s == la and txn:  # a retransmission: the cached reply again
            st[4] += 1
            K[2](tx, txn)
            continue
        la = s
        b = t & 0x3F
        e = 0
        if t & 0x80 or (ml and b != mt):
            e = 4 if t & 0x80 else 9
        elif ml + n > MM:
            e = 2
        if e:
            ml = 0
        else:
            copy(g, ml, rx, 2 | (n << 16))
            ml += n
            mt = b
            if t & 0x40:  # a MORE fragment: ACK
                reply(0xFE, s, 0)
                continue
            n = ml
            ml = 0
            try:
                if D and not 0x10 <= b <= 0x12:
                    D = None  # anything but UP_* ends an upload
                    restore()
                if b == 4:
                    e = infer(L, s, n)
                    if not e:
                        st[7] += td(tu(), t0)
                elif b < 6:  # HELLO, STATS, QSCALE, REPL: fwctl
                    e = lazy('fwctl')['do'](L, b, s, n)
                    if e < 0:
                        return
                elif 0x10 <= b <= 0x12:  # upload: fwup, the old model dropped
                    if b == 0x10:
                        q = D = None
                        m = x = y = None
                        K[3]()
                        D = lazy('fwup')
                    e = D['do'](L, b, s, n) if D else 9
                    if b == 0x12 and m:
                        D = None
                elif T:
                    e = __import__('fwtrain').do(L, b, s, n)
                else:
                    e = 4
                if not e:
                    continue
            except MemoryError:
                e = 6
            except OSError:
                e = 6
            except Exception:
                e = 9
            if m is None and e != 3:
                D = None
                restore()
        st[3] += 1
        raw[2] = e
        raw[3] = b
        reply(0xFF, s, 2)
