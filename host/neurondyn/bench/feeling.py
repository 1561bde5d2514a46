"""The ``feeling`` suite of ``ndyn bench``: on-board retraining on the virtual micro:bit V1.

Everything goes through the real firmware over the real protocol: the image
``ndyn flash`` builds for the micro:bit V1 (deploy.image_files), booted in
QEMU (MicroPython 1.9.2, ``-icount shift=6``: a deterministic ~16 MHz clock),
opened on its pty as ``neurondyn.link.Board``; the host sends TRAIN / EVAL
messages (``feeling.train`` / ``feeling.evaluate``), PULLs the model back and
commits it (``feeling.commit``: PULL + the atomic upload, through the V1's
restarts). On the V1 the msg kernel answers TRAIN with the Thumb trn kernel
(firmware/asm/fwftrn.py).

A hand-built law (3 sensors -> 1 output, K = 3 atoms, integer exponents, 1 %
noise, public seed). Scenarios:

- gain drift: sensors 1 and 2 read x1.3 and x0.8;
- offset: the output gains +0.5 (about a fifth of its spread);
- scale: the output is scaled x1.25;
- structural: one atom's exponent changes (t^2/p -> t/p): feeling alone cannot
  absorb it (``ndyn retrain``'s refit test flags it); remelting the pulled
  model on the host (what ``ndyn anneal NEW.csv --from PULLED.ndm --reheat
  TAU`` runs: commands.anneal.anneal_file with the pulled file) recovers the
  new atoms.

For 100, 200 and 400 drifted samples, each run starting from the flashed
model (uploaded again), the samples are streamed ``feeling.EPOCHS`` times
with the ``ndyn retrain`` default schedule, then committed; after the commit
(the V1 has restarted into the committed model) the board EVALs 100 fresh
drifted rows. Reported beside it: the clean RMSE (flashed model, pre-drift
data, board EVAL), the drifted RMSE before retraining, the pulled model's RMSE
(host prediction) and its largest difference from the board's own INFER, a
full re-anneal on the host from the same samples (anneal_file, what ``ndyn
anneal`` runs), the free heap the board reports (STATS, after a collection)
after the TRAIN frames, and the wall time of the stream and of the commit.

Device µs per training step: the firmware keeps no TRAIN timer (STATS times
INFER only). So at the end of a session the host asks the firmware for the
REPL (``Board.to_repl``: the serving loop returns, its state stays in RAM)
and a short board-side timer (TIMER, a file in the image) hands TRAIN
messages built on the host to the same msg kernel the serving loop calls
(fwd.X(S, .., E[14])), timed with ``time.ticks_us`` on the board: the
virtual clock, i.e. QEMU's instruction count x 64 ns (a real nRF51 spends
more cycles on loads, branches and flash wait states). The host's round
trip per sample over the pty is reported beside it; that is not device time
(QEMU runs faster or slower than its virtual clock). A 30 -> 12, K = 6 model
gets the same (µs per step, heap while training, pull parity, commit).
"""
from __future__ import annotations

import os
import struct
import tempfile
import time

import numpy as np

from .. import boards, deploy, feeling, ndm
from . import needs_qemu
from .problems import random_crystal
from ..errors import DeviceError
from ..vboard.rawrepl import ReplError
from ..model import Model, relative_deviation

SEED = 4004
NOISE = 0.01
COUNTS = (100, 200, 400)
FRESH = 100
REHEAT = 0.1                 # what ndyn retrain tells the user to remelt with
TIMED_MESSAGES = 4           # TRAIN messages the board-side timer runs
V1_MAX_MSG = 244             # the V1's message buffer (HELLO max_msg; fwbufs)
BOOT_WAIT = 90

# The board-side timer (a file in the image, tt.py; imported from the REPL
# after the serving loop has returned): k TRAIN messages of n bytes, records
# of V1_MAX_MSG bytes in t.bin, copied one by one into the engine's message
# buffer (S[9], an address on the V1) and handed to the msg kernel e as the
# serving loop does (X(S, heap, 0, E[14])), each call timed on the board's
# clock; prints the µs and the samples the replies (at S[10]: type 0xA0,
# used u16) say were used. Compact: the V1 compiles it in ~3 KB of heap.
TIMER = """from time import ticks_us as T, ticks_diff as D
from machine import mem8 as M
def do(S,X,e,n,k):
 f=open('t.bin','rb');b=bytearray(%d);t=u=0;q=S[9];p=S[10]
 for i in range(k):
  f.readinto(b)
  for j in range(n):M[q+j]=b[j]
  S[7]=32|256|n<<16;a=T();X(S,0,0,e);t+=D(T(),a)
  if M[p]==160:u+=M[p+2]|M[p+3]<<8
 f.close();print(t,u)
""" % V1_MAX_MSG


def law() -> Model:
    """y = 2 t^2/p + 0.5 v p + 0.3 t v + 1 over t, p, v in [0.5, 2]."""
    w = [[2, -1, 0], [0, 1, 1], [1, 0, 1]]
    return Model(np.zeros(3), np.ones(3), w, np.log([2.0, 0.5, 0.3]), [[1.0], [1.0], [1.0]],
                 [1.0], ["t", "p", "v"], ["y"]).rounded_to_float32()


def big_model() -> Model:
    """A 30 -> 12, K = 6 model (2-4 non-zero exponents per atom), issue 4's memory target."""
    return random_crystal(30, 12, 6, SEED + 1)


def scenarios(model):
    """name -> (target function of raw rows, true model after the change or None)."""
    def gain(X):
        Xd = X.copy()
        Xd[:, 0] *= 1.3
        Xd[:, 1] *= 0.8
        return model.predict(Xd)
    w = model.exponents.copy()
    w[0] = [1, -1, 0]
    changed = Model(model.offset, model.scale, w, model.log_gain, model.readout, model.bias,
                    model.inputs, model.outputs)
    return {"gain x1.3 / x0.8": (gain, None),
            "output offset +0.5": (lambda X: model.predict(X) + 0.5, None),
            "output scale x1.25": (lambda X: 1.25 * model.predict(X), None),
            "structural t^2/p -> t/p": (changed.predict, changed)}


def timer_records(X, Y, d_in: int, d_out: int, mu: float = 0.5) -> tuple:
    """(t.bin bytes, message length, samples per message) for the board-side timer:
    TIMED_MESSAGES TRAIN message bodies as ``feeling.train`` builds them, each
    holding as many samples as the V1's message buffer takes."""
    per = (V1_MAX_MSG - feeling.TRAIN_HEADER) // (4 * (d_in + d_out))
    out = b""
    n = 0
    for i in range(TIMED_MESSAGES):
        rows = np.hstack([X[i * per:(i + 1) * per], Y[i * per:(i + 1) * per]])
        if len(rows) < per:
            raise ValueError("the timer needs %d samples" % (per * TIMED_MESSAGES))
        body = struct.pack("<Bf", 0, mu) + rows.astype("<f4").tobytes()
        n = len(body)
        out += body + bytes(V1_MAX_MSG - n)
    return out, n, per


class Session:
    """A virtual micro:bit V1 serving ``blob`` from the image ndyn builds, opened as a Board.

    ``timer`` = (t.bin, n, per) from timer_records: the timer's files go into
    the image too; ``device_us()`` ends the session with it.
    """

    def __init__(self, blob: bytes, timer=None):
        from ..link import Board
        from ..vboard import MicrobitVM
        files = deploy.image_files(boards.get_profile("microbit-v1"), blob)
        self.timer = timer
        if timer is not None:
            files["t.bin"] = timer[0]
            files["tt.py"] = TIMER
        self.vm = MicrobitVM(files=files)
        try:
            info = deploy.wait_for_hello(self.vm.port, BOOT_WAIT, give_up=self.vm.boot_error)
            if info is None:
                raise DeviceError("the virtual micro:bit did not answer: %s"
                                  % (self.vm.boot_error() or self.vm.console_log()[-300:]))
            self.board = Board.open(self.vm.port, timeout=2.0)
            if self.board.info["max_msg"] != V1_MAX_MSG:
                raise DeviceError("the V1 firmware's message buffer is %d bytes, the bench's "
                                  "timer is built for %d" % (self.board.info["max_msg"],
                                                             V1_MAX_MSG))
        except BaseException:
            self.vm.stop()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        try:
            self.board.close()
        except Exception:
            pass
        self.vm.stop()

    def check(self):
        """DeviceError if the board printed a traceback (a crash the replies would hide)."""
        if "Traceback" in self.vm.console_log():
            raise DeviceError("the virtual micro:bit printed: %s" % self.vm.boot_error())

    def device_us(self) -> dict:
        """µs per TRAIN step on the board's clock (the session's end: it leaves for the REPL)."""
        import serial
        from ..vboard.rawrepl import RawRepl
        data, n, per = self.timer
        self.check()
        self.board.to_repl()
        self.board.close()
        ser = serial.Serial(self.vm.port, 115200, timeout=0.2)
        try:
            repl = RawRepl(ser)
            repl.enter()
            repl.exec("import fwd,tt,gc;gc.collect()", flow=False)
            free = int(repl.exec("print(gc.mem_free())", flow=False))
            us, used = (int(v) for v in repl.exec(
                "tt.do(fwd.S,fwd.X,fwd.E[14],%d,%d)" % (n, TIMED_MESSAGES), timeout=60,
                flow=False).split())
        finally:
            ser.close()
        if used != per * TIMED_MESSAGES:
            raise DeviceError("the board's timer stepped %d of %d samples"
                              % (used, per * TIMED_MESSAGES))
        return {"us_per_step": us / used, "us_per_message": us / TIMED_MESSAGES,
                "samples_per_message": per, "timed_steps": used, "repl_heap_free": free}


def host_anneal(folder, X, Y, model, init_blob=None) -> tuple:
    """What ``ndyn anneal DATA.csv [--from PULLED.ndm --reheat REHEAT]`` runs, on these
    samples: (model, seconds)."""
    from ..commands.anneal import anneal_file
    from ..data import read_model, write_csv
    data = os.path.join(folder, "new.csv")
    write_csv(data, model.inputs + model.outputs, np.hstack([X, Y]))
    init = None
    if init_blob is not None:
        pulled = os.path.join(folder, "pulled.ndm")
        with open(pulled, "wb") as fh:
            fh.write(init_blob)
        init = read_model(pulled)
    res = anneal_file(data, model.inputs, model.outputs, os.path.join(folder, "new.ndm"),
                      init=init, reheat=REHEAT if init is not None else None, progress=False)
    return res["model"], res["seconds"]


def feel(s, X, Y, Xf, Yf):
    """Stream X, Y with the default schedule, commit, EVAL; the run's figures."""
    b = s.board
    t0 = time.perf_counter()
    steps = 0
    for mu in feeling.schedule():
        steps += feeling.train(b, X, Y, mu=mu)["used"]
    wall = time.perf_counter() - t0
    heap = b.stats()["heap_free"]
    pulled_blob = feeling.pull(b)
    pulled = ndm.loads(pulled_blob)
    t0 = time.perf_counter()
    h = feeling.commit(b)
    commit_s = time.perf_counter() - t0
    if h != ndm.model_hash(pulled_blob) or feeling.pull(b) != pulled_blob:
        raise DeviceError("the board does not serve the committed model after its restart")
    after = feeling.evaluate(b, Xf, Yf)
    pred, status = b.infer(Xf)
    ok = status == 0
    return pulled_blob, {"board_rmse": after, "pulled_rmse": feeling.rmse(pulled.predict(Xf), Yf),
                         "pull_parity": relative_deviation(pred[ok], pulled.predict(Xf[ok])),
                         "steps": steps, "wall_s": wall, "round_trip_us": 1e6 * wall / steps,
                         "heap_free": heap, "commit_s": commit_s}


def run_scenarios(quick=False, log=print, folder=None):
    model = law()
    blob = ndm.dumps(model)
    rng = np.random.default_rng(SEED)
    n_max = max(COUNTS)
    X = rng.uniform(0.5, 2.0, (n_max, 3))
    Xf = rng.uniform(0.5, 2.0, (FRESH, 3))
    spread = float(np.std(model.predict(Xf)))

    def noisy(y):
        return y + NOISE * spread * rng.standard_normal(y.shape)
    Yc = noisy(model.predict(Xf))
    out = {"noise_rms": NOISE * spread, "scenarios": [], "board": "microbit-v1"}
    todo = [(name, t) for name, t in scenarios(model).items()
            if not quick or name.startswith(("gain", "structural"))]
    data = [(name, target, truth, noisy(target(X)), noisy(target(Xf)))
            for name, (target, truth) in todo]
    timer = timer_records(X, data[0][3], 3, 1)
    with Session(blob, timer) as s:
        log("feeling: virtual micro:bit V1 up, heap free %d B" % s.board.info["heap_free"])
        out["boot_heap_free"] = s.board.info["heap_free"]
        out["clean_rmse"] = feeling.evaluate(s.board, Xf, Yc)
        for j, (name, target, truth, Y, Yf) in enumerate(data):
            log("feeling: %s" % name)
            row = {"scenario": name, "runs": []}
            if j:
                s.board.upload(blob)             # the flashed model again
            row["drifted_rmse"] = feeling.evaluate(s.board, Xf, Yf)
            for i, n in enumerate(COUNTS if not quick else (n_max,)):
                if i:
                    s.board.upload(blob)
                pulled_blob, run = feel(s, X[:n], Y[:n], Xf, Yf)
                run["samples"] = n
                reach = feeling.refit_rmse(model, X[:n], Y[:n], Xf, Yf)
                run["flagged_structural"] = bool(
                    reach > feeling.STRUCTURAL * float(np.sqrt(np.mean((Y[:n] - Y[:n].mean()) ** 2))))
                host, secs = host_anneal(folder, X[:n], Y[:n], model)
                run.update(anneal_rmse=feeling.rmse(host.predict(Xf), Yf), anneal_s=secs,
                           anneal_k=host.k_star)
                if truth is not None:
                    remelt, rsecs = host_anneal(folder, X[:n], Y[:n], model, pulled_blob)
                    run.update(remelt_rmse=feeling.rmse(remelt.predict(Xf), Yf), remelt_s=rsecs,
                               remelt_exact=remelt.atom_set() == truth.atom_set())
                log("feeling: %s, %d samples: board RMSE %.4g" % (name, n, run["board_rmse"]))
                row["runs"].append(run)
            out["scenarios"].append(row)
        s.check()
        out["timer"] = s.device_us()
    return out


def big_model_run(log=print) -> dict:
    """The 30 -> 12, K = 6 model on the V1: heap while training, µs per step, pull, commit."""
    model = big_model()
    blob = ndm.dumps(model)
    rng = np.random.default_rng(SEED + 2)
    X = rng.uniform(0.5, 2.0, (60, model.d_in))
    Xd = X.copy()
    used = np.flatnonzero(np.any(model.exponents != 0, axis=0))
    drift = used[:2]                       # two sensors the law reads
    Xd[:, drift[0]] *= 1.3
    Xd[:, drift[1]] *= 0.8
    Y = model.predict(X)                   # the world; the drifted sensors read Xd
    Xt, Yt, Xf, Yf = Xd[:40], Y[:40], Xd[40:], Y[40:]
    res = {"d_in": model.d_in, "d_out": model.d_out, "k": model.k_star, "ndm_bytes": len(blob),
           "drifted": [model.inputs[j] for j in drift]}
    log("feeling: 30 -> 12, K = 6 on the virtual micro:bit V1")
    with Session(blob, timer_records(Xt, Yt, model.d_in, model.d_out)) as s:
        res["boot_heap_free"] = s.board.info["heap_free"]
        res["drifted_rmse"] = feeling.evaluate(s.board, Xf, Yf)
        res["heap_during_eval"] = s.board.stats()["heap_free"]
        _, run = feel(s, Xt, Yt, Xf, Yf)
        res.update(run)
        s.check()
        try:
            res["timer"] = s.device_us()
        except ReplError as exc:       # measured: the timer does not compile beside this model
            res["timer"] = None
            res["timer_why"] = str(exc)
    res["samples"], res["fresh"] = len(Xt), len(Xf)
    return res


def render(res) -> str:
    t = res["timer"]
    lines = ["### feeling: on-board retraining (virtual micro:bit V1, MicroPython 1.9.2)", "",
             "The real firmware over the real protocol: TRAIN / EVAL / PULL messages and the "
             "commit (PULL + the atomic upload, through the V1's restarts) from the host's "
             "`neurondyn.link.Board` on the QEMU board's pty. Law 3 -> 1, K = 3, noise 1 %% "
             "of the spread (rms %.4g). Clean RMSE (flashed model, pre-drift data, board "
             "EVAL): %.4g. Each count starts from the flashed model, is streamed %d times "
             "with mu = %s (the `ndyn retrain` default) and committed; the board's RMSE is "
             "its own EVAL on %d fresh drifted rows after the commit's restart."
             % (res["noise_rms"], res["clean_rmse"], feeling.EPOCHS,
                ", ".join("%g" % m for m in feeling.schedule()), FRESH), "",
             "| scenario | samples | drifted RMSE | board RMSE after | / clean | / drifted "
             "| pulled (host) | host re-anneal (K, s) | retrain flags structural | "
             "heap free (B) | stream s | commit s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in res["scenarios"]:
        for r in row["runs"]:
            lines.append("| %s | %d | %.4g | %.4g | %.2f | %.3f | %.4g | %.4g (%d, %.1f) | %s "
                         "| %d | %.1f | %.1f |"
                         % (row["scenario"], r["samples"], row["drifted_rmse"], r["board_rmse"],
                            r["board_rmse"] / res["clean_rmse"],
                            r["board_rmse"] / row["drifted_rmse"], r["pulled_rmse"],
                            r["anneal_rmse"], r["anneal_k"], r["anneal_s"],
                            "yes" if r["flagged_structural"] else "no", r["heap_free"],
                            r["wall_s"], r["commit_s"]))
    lines.append("")
    worst = max(r["pull_parity"] for row in res["scenarios"] for r in row["runs"])
    lines.append("The pulled model predicts what the board predicts (its INFER on the fresh "
                 "rows): largest |board - pulled| / (|pulled| + rms) %.1e." % worst)
    lines.append("")
    r = res["scenarios"][0]["runs"][-1]
    lines.append("Device time per training step (board clock, `time.ticks_us` under "
                 "`-icount shift=6`: QEMU's instruction count x 64 ns; timed on the board "
                 "around the msg kernel for %d TRAIN messages of %d samples, after the "
                 "serving loop handed over to the REPL): %.0f µs a step, %.0f µs a message. "
                 "Over the pty the host's round trip is %.0f µs a sample (%d samples x %d "
                 "passes streamed in %.1f s wall, %.1f s to commit): host time, not device "
                 "time."
                 % (TIMED_MESSAGES, t["samples_per_message"], t["us_per_step"],
                    t["us_per_message"], r["round_trip_us"], r["samples"], feeling.EPOCHS,
                    r["wall_s"], r["commit_s"]))
    lines.append("")
    for row in res["scenarios"]:
        for r in row["runs"]:
            if "remelt_rmse" in r:
                lines.append("Structural change (%s), %d samples: feeling alone RMSE %.4g; "
                             "remelting the pulled model on the host (`ndyn anneal --from "
                             "PULLED.ndm --reheat %g`): RMSE %.4g, exact new atoms: %s (%.1f s)."
                             % (row["scenario"], r["samples"], r["board_rmse"], REHEAT,
                                r["remelt_rmse"], "yes" if r["remelt_exact"] else "no",
                                r["remelt_s"]))
    big = res.get("big")
    if big:
        bt = big["timer"]
        timed = ("%.0f µs a step on the board clock (%d timed)" % (bt["us_per_step"],
                                                                   bt["timed_steps"])
                 if bt else "no board-clock timing (the timer script does not compile "
                 "beside this model in the V1's heap: %s)" % big.get("timer_why", "?"))
        lines += ["", "30 -> 12, K = 6 (.ndm %d B; sensors %s drift x1.3 and x0.8) on the V1: "
                  "heap free %d B at boot, %d B after %d x %d TRAIN messages (STATS, after a collection); EVAL RMSE on %d "
                  "fresh drifted rows %.4g before, %.4g after retraining and the commit's "
                  "restart; pulled vs board %.1e; %s; host round trip %.0f µs a sample; "
                  "commit %.1f s."
                  % (big["ndm_bytes"], " and ".join(big["drifted"]), big["boot_heap_free"], big["heap_free"], big["samples"],
                     feeling.EPOCHS, big["fresh"], big["drifted_rmse"],
                     big["board_rmse"], big["pull_parity"], timed,
                     big["round_trip_us"], big["commit_s"])]
    return "\n".join(lines) + "\n"


check_available = needs_qemu    # the registry asks before running the suite


def run(ctx=None):
    """The ``feeling`` suite (see the module docstring)."""
    from . import SuiteResult, as_context, progress_log
    ctx = as_context(ctx)
    log = progress_log(ctx)
    with tempfile.TemporaryDirectory(prefix="ndyn-feeling-") as folder:
        res = run_scenarios(ctx.quick, log, folder)
    res["big"] = big_model_run(log)
    res["quick"] = bool(ctx.quick)
    md = render(res)
    res["markdown"] = md
    return SuiteResult("feeling", md, res)
