"""The ``reliability`` suite of ``ndyn bench`` (issue 5): bad cables, power cuts, fuzzed frames.

On a virtual board running our firmware -- the micro:bit V1 (QEMU) when the
firmware and the model fit its profile and it boots, else mpy-wasm (current
MicroPython under wasmtime, the ``sys.stdin.buffer`` backend); the table says
which and why:

1. **Streaming under faults**: N samples (10,000; --quick 300) of a 3 -> 2,
   K = 3 model streamed with ``neurondyn.resume.ResumingStream`` (what
   ``ndyn stream`` runs) through ``vboard.FaultyLine`` at drop 1 %, corrupt
   1 %, dup 0.5 %, 50 ms stalls (seeded): rows lost, rows wrong (vs the host
   ``Model.predict``, float32 tolerance), retransmissions, resumes, throughput
   -- beside the same stream on the clean line.
2. **Power cuts during a model upload** (20; --quick 2): an upload of the
   other model runs, the power goes at a random instant of it, the board
   boots from its flash: it must answer HELLO with the old or the new model's
   hash and serve that model (parity on a few rows).
3. **Power cuts during a retrain commit** (20; --quick 2): TRAIN messages
   change the parameters in RAM, ``feeling.commit`` saves them (PULL, then
   the atomic upload; on the V1 through its upload mode's restarts); the
   power goes at a random instant of the commit; the board must boot the old
   or the new parameters, CRC-valid (parity against the model pulled before
   the commit, or the one before training). "not available" where the
   firmware answers TRAIN with E_UNKNOWN (firmware older than feeling).
4. **Board fuzz** (2,000 frames; --quick 200): the generator of
   tests/test_fuzz.py (random, structured, mutated, overlong frames) written
   to the board's port, each followed by a STATS probe that must be answered:
   no crash (the board keeps answering), no hang, only whole frames back;
   afterwards a model upload and INFER with parity.

Expected time (2 cores shared): full run on mpy-wasm ~35 min (the faulty
stream dominates: at 2.5 % byte faults most losses cost a reply timeout),
--quick ~1.5 min; on the virtual micro:bit several times longer.
"""
from __future__ import annotations

import struct
import tempfile
import threading
import time

import numpy as np

from .. import deploy, ndm, protocol as P
from ..errors import DeviceError, UserError
from ..model import Model

SEED = 5005
FAULTS = "drop=0.01,corrupt=0.01,dup=0.005,stall=50,seed=%d"
SIZES = {False: dict(samples=10000, clean=2000, upload_cuts=20, commit_cuts=20, fuzz=2000),
         True: dict(samples=300, clean=300, upload_cuts=2, commit_cuts=2, fuzz=200)}
TIMEOUT = {"mpy-wasm": 0.15, "microbit-v1": 0.6}      # seconds per reply before a resend

# -- frames for fuzzing (shared with tests/test_fuzz.py) --------------------------
REQUESTS = (P.HELLO, P.STATS, P.QSCALE, P.INFER, P.REPL, P.UP_BEGIN, P.UP_DATA, P.UP_COMMIT,
            P.PULL, P.TRAIN, 0x21)   # 0x21: unknown to the firmware
REPLY_TYPES = {t | P.REPLY for t in REQUESTS} | {P.ACK, P.ERROR}
LIMITS = {"uart": (60, 53, 244), "stdin": (260, 250, 1024)}   # max wire, payload, message
SOURCE_PAYLOADS = [b"import os; os.remove('main.py')", b"open('main.py','w').write('x')",
                   b"\x03\x03\x01import os\nos.remove('main.py')\n\x04\x02",
                   b"\x01exec(open('ndm_a').read())\x04", b"__import__('os').remove('ndm_a')"]


def fuzz_payload(rng, typ, io):
    """A payload for request ``typ``: random, or plausible numbers with nasty values."""
    _, pmax, _ = LIMITS[io]
    r = rng.random()
    if typ == P.INFER:
        fmt = int(rng.choice([0, 0, 1, 2, 255]))
        vals = rng.choice([0.5, 1.5, -1.0, 0.0, np.nan, np.inf, -np.inf, 3e38, 1e-38],
                          size=int(rng.integers(0, 14)))
        body = vals.astype("<f4").tobytes() if fmt != 1 else \
            rng.integers(-32768, 32768, size=len(vals)).astype("<i2").tobytes()
        return bytes([fmt]) + body[:pmax - 1]
    if typ == P.UP_BEGIN:
        total = int(rng.choice([0, 1, 100, 8192, 8193, 65535, 2 ** 31, 2 ** 32 - 1]))
        return struct.pack("<II", total, int(rng.integers(0, 2 ** 32)))[:8 if r < 0.9 else 5]
    if typ == P.UP_DATA:
        off = int(rng.choice([0, 0, 4, 49, 2 ** 32 - 1]))
        return struct.pack("<I", off) + rng.bytes(int(rng.integers(0, pmax - 4)))
    if typ == P.QSCALE:
        return rng.choice([0.0, 1.0, -2.0, np.nan, np.inf, 1e30],
                          size=int(rng.integers(0, 12))).astype("<f4").tobytes()
    if r < 0.1:
        return SOURCE_PAYLOADS[int(rng.integers(len(SOURCE_PAYLOADS)))][:pmax]
    return rng.bytes(int(rng.integers(0, pmax + 1)))


def fuzz_structured(rng, io, repl=0.0):
    """A CRC-valid frame: a request type (or any type), any seq, a plausible payload.

    REPL makes the firmware leave its serving loop (a legitimate request), so
    it is replaced by STATS except with probability ``repl``.
    """
    if rng.random() < 0.15:
        typ = int(rng.integers(0, 256))
    else:
        typ = int(rng.choice([t for t in REQUESTS if t != P.REPL] + [P.INFER] * 3))
        if rng.random() < 0.15:
            typ |= P.MORE
    if typ & 0x3F == P.REPL and rng.random() >= repl:
        typ = P.STATS
    return P.build_frame(typ, int(rng.integers(0, 256)), fuzz_payload(rng, typ & 0x3F, io))


def fuzz_mutate(rng, wire):
    """1-3 of: bit flip, inserted byte, dropped byte, duplicated run, truncation, replaced byte."""
    b = bytearray(wire)
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.integers(0, 6)
        i = int(rng.integers(0, len(b))) if b else 0
        if kind == 0 and b:
            b[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            b.insert(i, int(rng.integers(0, 256)))
        elif kind == 2 and len(b) > 1:
            del b[i]
        elif kind == 3:
            b[i:i] = b[i:i + int(rng.integers(1, 8))]
        elif kind == 4 and len(b) > 2:
            b = b[:int(rng.integers(1, len(b)))]
        elif b:
            b[i] = int(rng.integers(0, 256))
    return bytes(b)


def fuzz_chunks(rng, io, count, repl=0.0):
    """``count`` chunks of wire bytes, each starting a fresh frame as a host would:
    20 % noise, 35 % CRC-valid requests, 35 % mutated ones, 10 % overlong."""
    wmax, pmax, _ = LIMITS[io]
    for _ in range(count):
        r = rng.random()
        if r < 0.2:
            yield b"\x00" + rng.bytes(int(rng.integers(1, 90))) + b"\x00"
        elif r < 0.55:
            yield fuzz_structured(rng, io, repl)
        elif r < 0.9:
            yield b"\x00" + fuzz_mutate(rng, fuzz_structured(rng, io, repl)) + b"\x00"
        elif r < 0.95:
            run = rng.integers(1, 256, size=int(rng.integers(wmax - 2, 3 * wmax)), dtype=np.uint8)
            yield b"\x00" + run.tobytes() + b"\x00"
        else:
            big = rng.bytes(int(rng.integers(pmax + 1, pmax + 300)))
            yield P.build_frame(int(rng.choice([P.INFER, P.UP_DATA, P.TRAIN])),
                                int(rng.integers(0, 256)), big)


# -- models ----------------------------------------------------------------------------
def bench_model(seed=0) -> Model:
    """3 -> 2, K = 3, integer exponents: small enough for every board."""
    rng = np.random.default_rng(SEED + seed)
    w = np.array([[1, -1, 0], [0, 2, 1], [-2, 0, 1]], float)
    if seed:
        w = w[:, [1, 2, 0]]
    return Model(np.zeros(3), np.ones(3), w, rng.uniform(-1, 1, 3), rng.uniform(-2, 2, (3, 2)),
                 rng.uniform(-1, 1, 2), ["a", "b", "c"], ["y0", "y1"]).rounded_to_float32()


def parity(pred, host) -> np.ndarray:
    """Per row: the board's answer equals the host's to float32 precision."""
    rms = np.sqrt(np.mean(host ** 2)) if host.size else 0.0
    return np.all(np.abs(pred - host) <= 1e-4 * (np.abs(host) + rms), axis=1)


# -- the virtual board, with a flash that survives power cuts -------------------------
class Rig:
    """A virtual board whose flash persists: ``power_cut()`` then ``boot()`` again."""

    def __init__(self, name, blob, folder):
        from .. import boards
        self.name = name
        self.profile = boards.get_profile(name)
        self.folder = folder
        self.state = folder + "/microbit-flash.bin"
        self.files = deploy.image_files(self.profile, blob)
        self.vm = None
        self.upload_mode_boots = 0     # boots into the V1's upload mode a host ended
        self.boot(first=True)

    def boot(self, first=False, wait=60.0):
        from ..vboard import MicrobitVM, WasmBoard
        if self.name == "mpy-wasm":
            self.vm = WasmBoard(files=self.files if first else None, flash_dir=self.folder + "/flash")
        elif first:
            self.vm = MicrobitVM(files=self.files, minify=False)
        else:
            self.vm = MicrobitVM(files={}, flash_state=self.state)
        info = deploy.wait_for_hello(self.vm.port, wait, give_up=self.vm.boot_error)
        if info is None:
            why = self.vm.boot_error() or "no handshake within %.0f s" % wait
            raise DeviceError("the virtual %s did not serve: %s" % (self.name, why))
        return info

    @property
    def port(self):
        return self.vm.port

    def power_cut(self):
        if self.name == "mpy-wasm":
            self.vm.power_cut()
        else:
            self.vm.power_cut(save_to=self.state)

    def stop(self):
        if self.vm is not None:
            self.vm.stop()


def choose_board(blob, wanted=None):
    """(board name, why): the micro:bit if firmware + model fit its profile, else mpy-wasm."""
    from .. import boards
    if wanted:
        return wanted, "asked for"
    try:
        deploy.fitting_firmware(boards.get_profile("microbit-v1"), blob)
        from ..vboard import require_qemu
        require_qemu()
        return "microbit-v1", "firmware and model fit the micro:bit"
    except (UserError, DeviceError) as exc:
        return "mpy-wasm", "micro:bit not used: %s" % str(exc)[:160]


# -- 1. streaming under faults -----------------------------------------------------------
def stream_run(port, rows, timeout, give_up=60.0):
    from ..resume import ResumingStream, StreamInterrupted
    t0 = time.perf_counter()
    with ResumingStream(port, timeout=timeout, give_up=give_up) as link:
        link.connect()
        before = link.stats()
        try:
            pred, status = link.run(rows)
            answered = np.ones(len(rows), bool)
            why = None
        except StreamInterrupted as exc:
            pred, status, answered, why = exc.preds, exc.status, exc.answered, str(exc)
        seconds = time.perf_counter() - t0
        retransmits, wire = link.totals()
        stats = link.stats()
        naks = link.board.naks if link.board is not None else None
        return dict(pred=pred, status=status, answered=answered, seconds=seconds,
                    retransmits=retransmits, resumes=link.resumes, reopens=link.reopens,
                    wire=wire, naks=naks, stopped=why,
                    board_samples=stats["samples"] - before["samples"]
                    if stats and before and stats["samples"] >= before["samples"] else None)


def streaming(rig, model, sizes, log):
    from ..vboard import FaultyLine
    rng = np.random.default_rng(SEED)
    rows = rng.uniform(0.5, 2.0, size=(sizes["samples"], 3))
    host = model.predict(rows)
    timeout = TIMEOUT[rig.name]
    out = {}
    for label, spec, n in (("clean", None, sizes["clean"]),
                           ("faulty", FAULTS % SEED, sizes["samples"])):
        log("reliability: streaming %d samples over the %s line" % (n, label))
        line = FaultyLine(rig.port, spec) if spec else None
        try:
            r = stream_run(line.port if line else rig.port, rows[:n], timeout)
        finally:
            if line is not None:
                line.stop()
        ok = r["answered"] & (r["status"] == 0)
        good = np.zeros(n, bool)
        good[ok] = parity(r["pred"][ok], host[:n][ok])
        out[label] = {
            "samples": n, "answered": int(r["answered"].sum()),
            "lost": int(n - r["answered"].sum()),
            "wrong": int(np.count_nonzero(r["answered"] & ~good)),
            "retransmits": int(r["retransmits"]), "resumes": int(r["resumes"]),
            "reopens": int(r["reopens"]), "seconds": round(r["seconds"], 2),
            "samples_per_s": round(r["answered"].sum() / r["seconds"], 1),
            "wire_bytes_per_sample": round(r["wire"] / n, 1),
            "board_inferences": r["board_samples"], "stopped": r["stopped"],
            "line": spec or "clean", "faults": line.counts if line else None,
        }
    return out


# -- 2./3. power cuts -----------------------------------------------------------------------
def _serves(rig, models, rows):
    """After a reboot: (hash, ok) -- ok when the hash is a known model and it serves it."""
    from ..link import Board
    try:
        info = rig.boot()
    except DeviceError as exc:
        return None, False, str(exc)
    # Board.open takes a V1 that was cut between UP_BEGIN's flag file and its
    # restart out of its upload mode (one more restart): the board serves its
    # last good model as soon as a host talks to it
    with Board.open(rig.port, timeout=max(TIMEOUT[rig.name], 0.5)) as b:
        h = b.info.get("model_hash")
        rig.upload_mode_boots += b.left_upload_mode
        if h not in models:
            return h, False, "unknown model hash %r" % h
        pred, status = b.infer(rows)
    ok = not status.any() and bool(np.all(parity(pred, models[h].predict(rows))))
    return h, ok, None if ok else "wrong predictions"


def _cut_during(rig, work, window, rng):
    """Run ``work(board)`` in a thread and cut the power at a random instant of it.

    The instant is uniform in ``window`` seconds from the moment ``work``
    starts (the connection is opened first, so the cut lands in the work
    itself); returns whether ``work`` finished before the cut.
    """
    from ..link import Board
    done = {}
    ready = threading.Event()

    def target():
        try:
            with Board.open(rig.port, timeout=max(TIMEOUT[rig.name], 0.5)) as b:
                done["board"] = b
                ready.set()
                work(b)
                done["finished"] = True
        except Exception as exc:          # the power went: whatever the link says
            done["error"] = str(exc)
        finally:
            ready.set()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    ready.wait(30)
    time.sleep(float(rng.uniform(0.0, window)))
    rig.power_cut()
    if "board" in done and not done.get("finished"):
        done["board"].close()       # the board is gone: the link gives up now, not after its waits
    t.join(30)
    return done.get("finished", False)


def upload_cuts(rig, a, b, count, log):
    boots0 = rig.upload_mode_boots
    from ..link import Board
    rng = np.random.default_rng(SEED + 2)
    rows = rng.uniform(0.5, 2.0, size=(4, 3))
    blobs = {ndm.model_hash(ndm.dumps(m)): (m, ndm.dumps(m)) for m in (a, b)}
    models = {h: m for h, (m, _) in blobs.items()}
    with Board.open(rig.port, timeout=max(TIMEOUT[rig.name], 0.5)) as board:
        t0 = time.perf_counter()
        board.upload(ndm.dumps(b))                      # one whole upload: its duration
        window = time.perf_counter() - t0
        current = board.hello()["model_hash"]
    res = {"cuts": 0, "valid": 0, "old": 0, "new": 0, "finished_before_cut": 0,
           "upload_s": round(window, 3), "failures": []}
    for i in range(count):
        target = next(h for h in blobs if h != current)
        log("reliability: power cut %d/%d during an upload" % (i + 1, count))
        finished = _cut_during(rig, lambda bd: bd.upload(blobs[target][1]), window * 1.1, rng)
        h, ok, why = _serves(rig, models, rows)
        res["cuts"] += 1
        res["finished_before_cut"] += int(finished)
        res["valid"] += int(ok)
        res["new" if h == target else "old"] += int(ok)
        if not ok:
            res["failures"].append(why)
        if h in models:
            current = h
    res["upload_mode_boots"] = rig.upload_mode_boots - boots0
    return res


def commit_cuts(rig, model, count, log):
    boots0 = rig.upload_mode_boots
    from .. import feeling
    from ..link import Board, BoardError
    rng = np.random.default_rng(SEED + 3)
    rows = rng.uniform(0.5, 2.0, size=(4, 3))
    X = rng.uniform(0.5, 2.0, size=(8, 3))
    models = {ndm.model_hash(ndm.dumps(model)): model}
    res = {"cuts": 0, "valid": 0, "old": 0, "new": 0, "finished_before_cut": 0, "failures": []}
    with Board.open(rig.port, timeout=max(TIMEOUT[rig.name], 0.5)) as board:
        try:
            blob = feeling.pull(board)                  # whatever it serves now counts as old
            models[ndm.model_hash(blob)] = ndm.loads(blob)
            feeling.train(board, X, model.predict(X) * 1.1, mu=0.5)
        except BoardError as exc:
            if exc.code == P.E_UNKNOWN:
                res["available"] = False
                res["why"] = "the firmware on %s predates feeling (TRAIN is an unknown request)" % rig.name
                return res
            raise
        blob = feeling.pull(board)
        models[ndm.model_hash(blob)] = ndm.loads(blob)
        t0 = time.perf_counter()
        feeling.commit(board)
        window = time.perf_counter() - t0
    res.update(available=True, commit_s=round(window, 4))
    for i in range(count):
        log("reliability: power cut %d/%d during a retrain commit" % (i + 1, count))
        with Board.open(rig.port, timeout=max(TIMEOUT[rig.name], 0.5)) as board:
            old = board.info["model_hash"]
            feeling.train(board, X, model.predict(X) * (1.2 + 0.05 * i), mu=0.5)
            blob = feeling.pull(board)
            new = ndm.model_hash(blob)
            models[new] = ndm.loads(blob)
        finished = _cut_during(rig, feeling.commit, window * 1.2, rng)
        h, ok, why = _serves(rig, models, rows)
        res["cuts"] += 1
        res["finished_before_cut"] += int(finished)
        res["valid"] += int(ok and h in (old, new))
        res["new" if h == new else "old"] += int(ok and h in (old, new))
        if not (ok and h in (old, new)):
            res["failures"].append(why or "hash %r is neither the old nor the new model" % h)
    res["upload_mode_boots"] = rig.upload_mode_boots - boots0
    return res


# -- 4. board fuzz -------------------------------------------------------------------------
PROBE_WAIT = 30.0    # s without an answer to the probe: the board hangs (a V1 restart takes ~5 s)


def board_fuzz(rig, model, count, log):
    from ..link import Board, Transport
    io = "uart" if rig.name == "microbit-v1" else "stdin"
    rng = np.random.default_rng(SEED + 4)
    timeout = max(TIMEOUT[rig.name], 0.3)
    t = Transport(rig.port)
    res = {"frames": 0, "answers": 0, "naks": 0, "errors": 0, "broken_answers": 0,
           "unexpected": 0, "probe_resends": 0, "restarts": 0, "cached": 0,
           "hung": False}
    seq = 0
    try:
        t.discard_input()
        for i, chunk in enumerate(fuzz_chunks(rng, io, count)):
            if i % 200 == 0:
                log("reliability: board fuzz %d/%d" % (i, count))
            t.write(chunk)
            res["frames"] += 1
            seq = (seq + 1) & 0xFF
            probe = P.build_frame(P.STATS, (seq + 128) & 0xFF)    # never a fuzz frame's seq
            got = False
            # a fuzz frame may be a valid request that restarts the board
            # (the V1: UP_BEGIN into upload mode, any error there back out):
            # hung means no answer for as long as a restart may take
            t_probe = time.monotonic()
            attempt = 0
            while time.monotonic() - t_probe < PROBE_WAIT:
                if attempt:
                    res["probe_resends"] += 1
                attempt += 1
                t.write(probe)
                deadline = time.monotonic() + timeout
                while not got:
                    frames = t.read_frames(deadline)
                    if not frames:
                        break
                    for typ, s, body in frames:
                        if s == (seq + 128) & 0xFF and typ in (P.STATS | P.REPLY, P.ERROR):
                            got = True      # answered (an ERROR if it broke a fuzz fragment)
                        elif s == (seq + 128) & 0xFF and typ in REPLY_TYPES:
                            # a fuzz frame had the probe's seq: the board took the
                            # probe for its retransmission and answered from its
                            # duplicate cache (docs/protocol.md 5): alive
                            got = True
                            res["cached"] += 1
                        elif typ not in REPLY_TYPES:
                            res["unexpected"] += 1
                        elif typ == P.ERROR and s == 0 and body[1:2] == b"\x00":
                            res["naks"] += 1
                        else:
                            res["errors" if typ == P.ERROR else "answers"] += 1
                if got:
                    break
            if not got:
                res["hung"] = True
                break
            if time.monotonic() - t_probe > 2.0:
                res["restarts"] += 1
        res["broken_answers"] = t.decoder.bad
        board = Board(t, timeout=timeout)
        board.seq = (seq + 64) & 0xFF
        try:
            board.hello()
        except DeviceError:          # a HELLO landing on a half-received fuzz message
            board.hello()
        board.upload(ndm.dumps(model))
        rows = rng.uniform(0.5, 2.0, size=(6, 3))
        pred, status = board.infer(rows)
        res["serves_afterwards"] = bool(not status.any() and np.all(parity(pred, model.predict(rows))))
    except DeviceError as exc:
        res["serves_afterwards"] = False
        res["error"] = str(exc)
    finally:
        t.close()
    return res


# -- the suite ---------------------------------------------------------------------------------
def render(res) -> str:
    from .table import md_table, verdict
    s = res["streaming"]
    lines = ["### reliability on the virtual %s (%s)" % (res["board"], res["board_why"]), ""]
    lines.append(md_table(
        ["line", "samples", "lost", "wrong", "retransmits", "resumes", "samples/s",
         "wire B/sample", "board inferences"],
        [[v["line"], v["samples"], v["lost"], v["wrong"], v["retransmits"], v["resumes"],
          v["samples_per_s"], v["wire_bytes_per_sample"], v["board_inferences"]]
         for v in (s["clean"], s["faulty"])]))
    f = s["faulty"]["faults"] or {}
    if f:
        lines += ["", "faults injected: to board %s; to host %s" % (f.get("to_board"), f.get("to_host"))]
    rows = []
    for label, r in (("model upload", res["upload_cuts"]), ("retrain commit", res["commit_cuts"])):
        if r.get("available") is False:
            rows.append([label, "-", "-", "-", "-", "not available: %s" % r["why"]])
        else:
            rows.append([label, r["cuts"], "%d/%d" % (r["valid"], r["cuts"]), r["old"], r["new"],
                         r.get("upload_mode_boots", 0), verdict(r["valid"] == r["cuts"])])
    lines += ["", md_table(["power cut during", "cuts", "boots a CRC-valid model", "old", "new",
                            "of them in upload mode first", "result"], rows)]
    if any(r.get("upload_mode_boots") for r in (res["upload_cuts"], res["commit_cuts"])):
        lines += ["", "In upload mode first: the cut fell between UP_BEGIN's flag file and the "
                  "V1's restart, so it booted into its upload mode (no model); the next host that "
                  "opened it (`Board.open`, as every ndyn command does) ended that mode and the "
                  "board served the model counted."]
    z = res["fuzz"]
    lines += ["", md_table(["board fuzz frames", "answers", "errors", "NAKs", "broken answers",
                            "restarts", "hung", "serves afterwards"],
                           [[z["frames"], z["answers"], z["errors"], z["naks"], z["broken_answers"],
                             z.get("restarts", 0), z["hung"], z.get("serves_afterwards")]])]
    return "\n".join(lines) + "\n"


def run(ctx=None):
    """The ``reliability`` suite (see the module docstring)."""
    from . import SuiteResult, as_context, progress_log
    ctx = as_context(ctx)
    log = progress_log(ctx)
    sizes = SIZES[bool(ctx.quick)]
    a, b = bench_model(0), bench_model(1)
    blob = ndm.dumps(a)
    name, why = choose_board(blob, ctx.options.get("board"))
    res = {"board": name, "board_why": why, "quick": bool(ctx.quick), "sizes": sizes}
    with tempfile.TemporaryDirectory(prefix="ndyn-reliability-") as folder:
        rig = Rig(name, blob, folder)
        try:
            res["streaming"] = streaming(rig, a, sizes, log)
            res["upload_cuts"] = upload_cuts(rig, a, b, sizes["upload_cuts"], log)
            res["commit_cuts"] = commit_cuts(rig, a, sizes["commit_cuts"], log)
            res["fuzz"] = board_fuzz(rig, a, sizes["fuzz"], log)
        finally:
            rig.stop()
    for r in res["streaming"].values():
        r.pop("pred", None)
    md = render(res)
    res["markdown"] = md
    return SuiteResult("reliability", md, res)
