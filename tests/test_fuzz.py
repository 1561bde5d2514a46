"""Fuzzing the firmware's frame parser and dispatcher under CPython (issue 5, DESIGN.md §7, §9).

The real serving loop on the plain path (``fwd`` booted as main.py does where
there is no fwk.bin, tests/fwhost.py: the frame engine ``fwcobs.eng``, the
msg kernel ``fwplain.msg``, INFER ``fwplain.inf``, ``fwq`` and its request
handlers, the model store fwload/fwslot/fwsave in the current folder) reads
from a feeder that hands it one chunk of bytes at a time; when the firmware
asks for more, the previous chunk has been fully handled and everything it
wrote is that chunk's answer. Over > 100,000 random, structured and mutated
frames (a seeded numpy generator for the bulk, hypothesis with a fixed seed
for short sequences):

* no exception escapes the firmware, and no chunk takes unbounded time (a
  generous watchdog per chunk catches an endless loop -- not a speed test);
* the board only ever writes whole, CRC-valid frames: NAKs for frames it
  could not read, or replies / ACKs / ERRORs carrying the seq of a CRC-valid
  frame of that chunk, at most one per such frame;
* afterwards a normal HELLO, model upload and INFER are answered correctly;
* received bytes are never executed: payloads of Python source and raw-REPL
  control sequences change no file; the only file the protocol can write is
  the model slot; lengths are checked before allocation (huge UP_BEGIN
  totals, overlong fragments: E_BAD_LEN, no MemoryError).

Both I/O configurations run: ``uart`` (a micro:bit-style ``microbit.uart``
line: the V1's limits, 60-byte frames, 244-byte messages, 64-byte reads) and
``stdin`` (ESP32/RP2040/pyboard/mpy-wasm: 260-byte frames, 1-byte reads).
"""
import ast
import gc
import re
import signal
import struct

import numpy as np
import pytest
from hypothesis import given, seed, settings, strategies as st

from neurondyn import deploy, ndm, protocol as P
from neurondyn.bench.reliability import (LIMITS, REPLY_TYPES, REQUESTS, SOURCE_PAYLOADS,
                                         fuzz_chunks)
from neurondyn.model import Model
from neurondyn.paths import firmware_dir

import fwhost  # noqa: E402  (tests/: the firmware's plain path under CPython)

WATCHDOG_S = 20.0      # per chunk: catches a hang, far above any real chunk's time


def model_blob(d_in=4, d_out=2):
    w = np.zeros((3, d_in))
    w[0, 0], w[0, 1], w[1, 2], w[2, 3], w[2, 0] = 1, -1, 2, -2, 1
    m = Model(np.zeros(d_in), np.ones(d_in), w, [0.1, -0.3, 0.2], [[1.0, -0.5], [0.25, 2.0],
              [-1.0, 0.5]], [0.5, -0.25], ["a", "b", "c", "d"], ["y", "z"]).rounded_to_float32()
    return m, ndm.dumps(m)


MODEL, BLOB = model_blob()


class Done(BaseException):
    """The feeder ran dry: ends the serving loop (never caught by the firmware)."""


class Hang(BaseException):
    """The watchdog fired: the firmware spent unbounded time on one chunk."""


class Feeder:
    """rd/wr for the firmware: one chunk at a time, every chunk's answer checked."""

    def __init__(self, chunks, check):
        self.chunks = iter(chunks)
        self.check = check
        self.cur = None
        self.pos = 0
        self.out = bytearray()
        self.count = 0
        self.repl = 0

    def rd(self, buf):
        if self.cur is None or self.pos >= len(self.cur):
            if self.cur is not None:
                self.check(self.cur, bytes(self.out))
                self.count += 1
            self.out = bytearray()
            self.cur = next(self.chunks, None)
            if self.cur is None:
                raise Done()
            self.pos = 0
            signal.setitimer(signal.ITIMER_REAL, WATCHDOG_S)
        n = min(len(buf), len(self.cur) - self.pos)
        buf[:n] = self.cur[self.pos:self.pos + n]
        self.pos += n
        return n

    def wr(self, b, n):
        self.out += bytes(b[:n])


@pytest.fixture
def firmware(tmp_path, monkeypatch):
    """The firmware with its model store in tmp_path, for one I/O configuration."""
    monkeypatch.chdir(tmp_path)
    fwhost.store(BLOB)
    (tmp_path / "main.py").write_bytes(b"# the board's boot file: must survive\n")

    def on_alarm(signum, frame):
        raise Hang()
    old_alarm = signal.signal(signal.SIGALRM, on_alarm)
    gc.freeze()                     # the uart config collects at HELLO/STATS: keep that cheap
    was_enabled = gc.isenabled()

    def serve(io, chunks, check):
        feeder = Feeder(chunks, check)
        try:
            while True:             # fwd returns only after a REPL request: boot again
                fwhost.serve(feeder.rd, feeder.wr, uart=io == "uart")
                feeder.repl += 1
        except Done:
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return feeder

    yield serve
    signal.signal(signal.SIGALRM, old_alarm)
    gc.unfreeze()
    if was_enabled:
        gc.enable()


def frames_in(chunk):
    """The CRC-valid frames in ``chunk`` (host decoder): what a reply may answer."""
    out = []
    for piece in bytes(chunk).split(b"\x00"):
        try:
            out.append(P.parse_frame(piece))
        except P.FrameError:
            pass
    return out


def checker(io, stats):
    def check(chunk, answer):
        dec = P.FrameDecoder()
        replies = dec.feed(answer)
        assert dec.bad == 0 and not dec.buf, "board wrote a broken frame: %r" % answer[:80]
        valid = frames_in(chunk)
        seqs = {f[1] for f in valid}
        answered = 0
        for typ, seq, body in replies:
            assert typ in REPLY_TYPES, "unexpected frame type 0x%02x" % typ
            if typ == P.ERROR:
                assert len(body) == 2 and 1 <= body[0] <= 9, body
            if typ == P.ERROR and seq == 0 and body[1] == 0 and body[0] in P.NAK_CODES:
                stats["naks"] += 1
                continue
            assert seq in seqs, "a reply (0x%02x, seq %d) to no valid frame" % (typ, seq)
            answered += 1
            stats["errors" if typ == P.ERROR else "replies"] += 1
        assert answered <= len(valid)
        stats["frames"] += max(1, chunk.count(b"\x00") - 1)
    return check


# -- the bulk: the seeded generator the board fuzz of `ndyn bench reliability` uses ---
REPL_EVERY = 5000


def bulk(rng, io, count):
    """Random, structured and mutated frames; every REPL_EVERY-th chunk a REPL
    request (the firmware leaves its loop; the board boots again), after two
    HELLOs (the second one new to the duplicate cache: it ends any message
    the fuzz left half-received)."""
    for i, chunk in enumerate(fuzz_chunks(rng, io, count)):
        if i % REPL_EVERY == REPL_EVERY - 1:
            chunk = b"".join(P.build_frame(t, (i + k) & 255, p) for k, (t, p) in
                             enumerate([(P.HELLO, b"\x01"), (P.HELLO, b"\x01"), (P.REPL, b"")]))
        yield chunk


def normal_session(serve, io, tmp_path):
    """After the fuzz: HELLO, a fresh upload of MODEL in fragments, INFER with parity."""
    _, pmax, _ = LIMITS[io]
    seq = [100]
    frames = []

    def send(typ, payload=b""):
        seq[0] += 1
        frames.append(P.build_frame(typ, seq[0], payload))

    send(P.HELLO, P.hello_request())
    crc = struct.unpack("<I", BLOB[-4:])[0]
    send(P.UP_BEGIN, struct.pack("<II", len(BLOB), crc))
    step = pmax - 4
    for off in range(0, len(BLOB), step):
        send(P.UP_DATA, struct.pack("<I", off) + BLOB[off:off + step])
    send(P.UP_COMMIT)
    rows = np.array([[0.5, 1.5, 2.0, 0.75], [1.25, 0.8, 1.1, 3.0]])
    send(P.INFER, P.infer_payload(rows, P.FMT_F32))
    answers = []
    serve(io, [b"\x00"] + frames, lambda chunk, out: answers.append(P.FrameDecoder().feed(out)))
    answers = answers[1:]
    assert [a[0][0] for a in answers] == [P.HELLO | P.REPLY, P.UP_BEGIN | P.REPLY] + \
        [P.UP_DATA | P.REPLY] * (len(frames) - 4) + [P.UP_COMMIT | P.REPLY, P.INFER | P.REPLY]
    hello = P.parse_hello(answers[0][0][2])
    assert hello["proto"] == P.PROTO_VERSION and hello["max_payload"] == pmax
    assert struct.unpack_from("<I", answers[-2][0][2])[0] == ndm.model_hash(BLOB)
    pred, status = P.parse_infer(answers[-1][0][2], 2, 2)
    host = MODEL.predict(rows)
    assert not status.any() and np.allclose(pred, host, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("io,count", [("uart", 70000), ("stdin", 32000)])
def test_bulk_fuzz_never_crashes_hangs_or_answers_garbage(firmware, tmp_path, io, count):
    rng = np.random.default_rng(20261204 + len(io))
    stats = {"frames": 0, "naks": 0, "replies": 0, "errors": 0}
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    feeder = firmware(io, bulk(rng, io, count), checker(io, stats))
    assert feeder.count == count and feeder.repl >= count // REPL_EVERY
    assert stats["frames"] >= count
    # every kind of answer was exercised
    assert stats["naks"] > 1000 and stats["replies"] > 1000 and stats["errors"] > 1000, stats
    # nothing but the model slots was written; the boot file is intact
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after["main.py"] == before["main.py"]
    assert set(after) - set(before) <= {"ndm_a", "ndm_b"}
    normal_session(firmware, io, tmp_path)


# -- hypothesis: short sequences of frames, shrinkable, fixed seed --------------
def flip_one_bit(args):
    wire, where, bit = args
    b = bytearray(wire)
    i = 1 + where % (len(b) - 2)            # inside the frame, not its delimiters
    b[i] ^= 1 << bit
    return bytes(b)


def wire_frames(io):
    _, pmax, _ = LIMITS[io]
    typ = st.one_of(st.sampled_from([t for t in REQUESTS if t != P.REPL]),
                    st.integers(0, 255).filter(lambda t: t & 0x3F != P.REPL))
    good = st.builds(P.build_frame, typ, st.integers(0, 255),
                     st.one_of(st.binary(max_size=pmax + 8), st.sampled_from(SOURCE_PAYLOADS)))
    noise = st.binary(min_size=1, max_size=3 * LIMITS[io][0]).map(lambda b: b"\x00" + b + b"\x00")
    flipped = st.tuples(good, st.integers(0, 10 ** 6), st.integers(0, 7)).map(flip_one_bit)
    return st.lists(st.one_of(good, noise, flipped), min_size=1, max_size=25)


@pytest.mark.parametrize("io", ["uart", "stdin"])
def test_hypothesis_frame_sequences(firmware, io):
    stats = {"frames": 0, "naks": 0, "replies": 0, "errors": 0}

    @seed(5)
    @settings(max_examples=150, deadline=None, database=None)
    @given(wire_frames(io))
    def run(chunks):
        feeder = firmware(io, list(chunks), checker(io, stats))
        assert feeder.count == len(chunks)
    run()
    assert stats["frames"] >= 150


# -- targeted: lengths bounded before allocation, code never executed ------------
def test_lengths_are_bounded_before_allocation(firmware):
    answers = []
    frames = [b"\x00",
              P.build_frame(P.UP_BEGIN, 1, struct.pack("<II", 2 ** 32 - 1, 0)),    # 4 GB upload
              P.build_frame(P.UP_BEGIN, 2, struct.pack("<II", 8193, 0)),
              P.build_frame(P.HELLO, 3, b"\x01")]
    frames += [P.build_frame(P.INFER | P.MORE, 10 + i, bytes(53)) for i in range(5)]   # > 244 B
    frames.append(P.build_frame(P.INFER, 20, bytes(33)))
    frames.append(P.build_frame(P.HELLO, 21, b"\x01"))
    frames.append(b"\x00" + b"\x11" * 500 + b"\x00")                              # overlong frame
    frames.append(P.build_frame(P.STATS, 22))
    firmware("uart", frames, lambda c, out: answers.append(P.FrameDecoder().feed(out)))
    answers = answers[1:]
    err = lambda a: (a[0][0], a[0][2][0]) if a and a[0][0] == P.ERROR else None
    assert err(answers[0]) == (P.ERROR, P.E_BAD_LEN) and err(answers[1]) == (P.ERROR, P.E_BAD_LEN)
    assert answers[2][0][0] == P.HELLO | P.REPLY
    more = [a[0][0] for a in answers[3:8]]
    assert more[:4] == [P.ACK] * 4 and err(answers[7]) == (P.ERROR, P.E_BAD_LEN)
    assert answers[9][0][0] == P.HELLO | P.REPLY
    assert err(answers[10]) == (P.ERROR, P.E_BAD_LEN) and answers[10][0][1] == 0       # NAK
    stats = P.parse_stats(answers[11][0][2])
    assert stats["errors"] >= 3 and stats["bad_frame"] >= 1


def test_source_and_raw_repl_bytes_are_never_executed(firmware, tmp_path):
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    chunks = [b"\x00"]
    for src in SOURCE_PAYLOADS:
        chunks.append(src + b"\r\n")                               # raw, unframed
        for typ in (P.HELLO, P.INFER, P.UP_DATA, P.TRAIN, 0x3A):
            chunks.append(P.build_frame(typ, len(chunks), src))
    answers = []
    firmware("stdin", chunks, lambda c, out: answers.append(P.FrameDecoder().feed(out)))
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before                     # no file created, removed or changed
    for got in answers:
        for typ, _, body in got:
            assert typ == P.ERROR or typ in (P.HELLO | P.REPLY, P.UP_DATA | P.REPLY,
                                             P.INFER | P.REPLY, P.TRAIN | P.REPLY)


def _consts(node):
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def _source_name(node):
    """A file name that is a .py source: 'fwx.py', or name + '.py'."""
    return any(c.endswith(".py") for c in _consts(node))


def _slot_name(node):
    """A model slot's file name: built on the constant 'ndm_'."""
    return any(c.startswith("ndm_") for c in _consts(node))


def _scopes(tree):
    """{node: the innermost function (or the module) it belongs to}."""
    owner = {}

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            owner[child] = scope
            visit(child, child if isinstance(child, ast.FunctionDef) else scope)
    visit(tree, tree)
    return owner


def _callee(node):
    return node.func.id if isinstance(node.func, ast.Name) else \
        node.func.attr if isinstance(node.func, ast.Attribute) else None


HANDLER = re.compile(r"^fw[a-z0-9]*%02x$")     # 'fwr%02x' % type: fwr05.py, fwr10.py, ...


def _our_module(arg):
    """A module name a loader may be given: a literal, or the handler file of a
    request type ('fwr%02x' % an int: only hex digits can follow the prefix)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return "." not in arg.value and "/" not in arg.value
    return (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod)
            and isinstance(arg.left, ast.Constant) and isinstance(arg.left.value, str)
            and bool(HANDLER.match(arg.left.value)))


def test_firmware_sources_cannot_execute_or_write_what_they_receive():
    """Static, over every file of the firmware an image ships (main.py's closure):

    * no eval / compile; ``exec`` only of a file opened under a ``.py`` name
      (``exec(f.read())`` with ``f = open(... '.py')``): what runs is a source
      file of ours, never received bytes;
    * a *loader* runs a source file whose name its callers give (fwd.lazy:
      ``open(n + '.py')``, or ``__import__(n)`` where the file is missing);
      ``__import__`` of a computed name only inside loaders, and every call of
      a loader names its module with a literal, or the handler of a request
      type ('fwr%02x' % type);
    * files are written only as model slots (``ndm_`` names, which can never be
      a ``.py`` file a loader would run), the plain path's by fwsave; removed or
      renamed only as slots; read only as ``.py`` sources, slots or literal names.
    """
    required, optional = deploy.firmware_closure(firmware_dir())
    trees = {name: ast.parse((firmware_dir() / name).read_text(), name)
             for name in required + optional}
    loaders, writers, runs = set(), set(), 0
    for name, tree in trees.items():
        owner = _scopes(tree)
        opened = {}                 # (scope, variable) -> the open() call assigned to it
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Call)
                    and _callee(node.value) == "open"):
                opened[owner[node], node.targets[0].id] = node.value
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _callee(node) == "exec"):
                continue
            arg = node.args[0]
            assert (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
                    and arg.func.attr == "read" and isinstance(arg.func.value, ast.Name)
                    and (owner[node], arg.func.value.id) in opened), (name, node.lineno)
            source = opened[owner[node], arg.func.value.id].args[0]
            assert _source_name(source), (name, node.lineno)
            runs += 1
            if not isinstance(source, ast.Constant):
                assert isinstance(owner[node], ast.FunctionDef), (name, node.lineno)
                loaders.add(owner[node].name)        # the file name comes from its callers
    assert runs and "lazy" in loaders
    for name, tree in trees.items():
        owner = _scopes(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            callee = _callee(node)
            assert callee not in ("eval", "compile", "execfile"), (name, node.lineno)
            if callee == "__import__" and not isinstance(node.args[0], ast.Constant):
                scope = owner[node]
                assert isinstance(scope, ast.FunctionDef) and scope.name in loaders, \
                    (name, node.lineno)
            if callee in loaders and not (isinstance(node.func, ast.Name) and
                                          isinstance(owner[node], ast.FunctionDef) and
                                          owner[node].name == callee):
                assert node.args and _our_module(node.args[0]), (name, node.lineno, callee)
            if callee in ("remove", "rename", "unlink", "rmdir"):
                assert node.args and all(_slot_name(a) and not _source_name(a)
                                         for a in node.args), (name, node.lineno, callee)
            if callee == "open" and isinstance(node.func, ast.Name):
                mode = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "mode"), ast.Constant("r"))
                mode = mode.value if isinstance(mode, ast.Constant) else "?"
                if set(mode) & set("wax+?"):
                    assert _slot_name(node.args[0]) and not _source_name(node.args[0]), \
                        (name, node.lineno, mode)
                    writers.add(name)
                else:
                    assert _source_name(node.args[0]) or _slot_name(node.args[0]) or \
                        isinstance(node.args[0], ast.Constant), (name, node.lineno)
    assert "fwsave.py" in writers


@pytest.mark.parametrize("code, ok", [
    ("def lazy(n):\n    f = open(n + '.py')\n    exec(f.read(), {})\n", True),
    ("def go(me, b):\n    me.lazy('fwr%02x' % b)\n", True),
    ("def go(me, b):\n    me.lazy(b)\n", False),                     # a computed module name
    ("def go(me, b):\n    me.lazy('%s' % b)\n", False),
    ("def go(g):\n    exec(g)\n", False),                            # received bytes run
    ("def go(n):\n    f = open(n)\n    exec(f.read())\n", False),   # not a source file
    ("def go(b):\n    f = open('main.py', 'w')\n    f.write(b)\n", False),
    ("def go(b):\n    f = open('ndm_' + 'ab'[b], 'wb')\n", True),
    ("def go():\n    __import__('os').remove('main.py')\n", False),
    ("def go(s):\n    eval(s)\n", False),
])
def test_the_static_check_tells_them_apart(tmp_path, monkeypatch, code, ok):
    fw = tmp_path / "fw"
    fw.mkdir()
    lazy = "def lazy(n):\n    f = open(n + '.py')\n    exec(f.read(), {})\n"
    (fw / "main.py").write_text("import fwx, fwsave\n")
    (fw / "fwsave.py").write_text("def do(me, b):\n    open('ndm_a', 'wb').write(b)\n" + lazy)
    (fw / "fwx.py").write_text(code)
    monkeypatch.setattr(__import__(__name__), "firmware_dir", lambda: fw)
    if ok:
        test_firmware_sources_cannot_execute_or_write_what_they_receive()
    else:
        with pytest.raises(AssertionError):
            test_firmware_sources_cannot_execute_or_write_what_they_receive()
