"""The ``feeling`` suite of ``ndyn bench``: on-board retraining on the virtual micro:bit.

A hand-built law (3 sensors -> 1 output, K = 3 atoms, integer exponents, 1 %
noise, public seed) runs on the virtual micro:bit (QEMU, MicroPython 1.9.2,
``-icount shift=6``: deterministic ~16 MHz clock) with the firmware's own
``fwmodel`` (Thumb kernels, parameters in place in the .ndm) and ``fwlearn``
(the step rule), driven by a small on-board driver (DRIVER_V1) that does what
fwtrain's TRAIN handler does, instead of the serial loop: the V1's heap and
file system cannot hold the serving firmware and fwtrain together yet (see
docs/feeling.md). Scenarios:

- gain drift: sensors 1 and 2 read x1.3 and x0.8;
- offset: the output gains +0.5 (about a fifth of its spread);
- scale: the output is scaled x1.25;
- structural: one atom's exponent changes (t^2/p -> t/p): feeling alone cannot
  absorb it; remelting the pulled model on the host
  (``Annealer(reheat=...).fit(X, Y, init=pulled)``) recovers the new atoms.

For 100, 200 and 400 drifted samples (streamed ``feeling.EPOCHS`` times with
the ``ndyn retrain`` default step schedule) the board's RMSE on 100 fresh
drifted rows (its own evaluation) is reported beside the clean RMSE (pre-drift
model, pre-drift data), the drifted RMSE before retraining, the model pulled
back from the board (host prediction), and a full re-anneal on the host from
the same samples (``neurondyn.anneal.Annealer``); plus device µs per training
step and the lowest free heap seen while training (no raw-REPL loader: the
driver's scripts are short). A 30 -> 12 (K = 6) model is tried too: it does
not load next to the kernels, the rule and the driver (reported).
"""
from __future__ import annotations

import time

import numpy as np

from .. import feeling, ndm
from . import needs_qemu
from ..model import Model
from ..paths import firmware_dir

SEED = 4004
NOISE = 0.01
COUNTS = (100, 200, 400)
FRESH = 100
def model_files(plain: bool = False) -> list:
    """Firmware modules fwmodel needs besides itself: what it imports or opens by
    name (fwk / the six kernels, a loader file); fwplain only for ``plain``."""
    import re
    fw = firmware_dir()
    text = (fw / "fwmodel.py").read_text(encoding="utf-8")
    names = sorted(set(re.findall(r"\b(fw[a-z0-9_]+)\b", text)) - {"fwmodel"})
    return [n for n in names if (fw / (n + ".py")).is_file() and (plain or n != "fwplain")]


def kernel_modules() -> list:
    """Modules to import before fwmodel on the V1 (files it only opens are not imported)."""
    import ast
    fw = firmware_dir()
    names = set()
    for node in ast.walk(ast.parse((fw / "fwmodel.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return sorted(n for n in names if n != "fwplain" and (fw / (n + ".py")).is_file())


def modules() -> list:
    """Import order on the V1: kernels (largest compile), model, the model loaded
    (fwtld, early: its buffers need contiguous heap), rule, driver."""
    return kernel_modules() + ["fwmodel", "fwlearn", "fwtld", "fwtdrv"]
REHEAT = 1.0

# On-board driver for current MicroPython (tests): TRAIN / EVAL message bodies
# built from a file and handed to fwtrain.train, one sample per message (as
# over the V1's link); pull() prints the model bytes fwtrain keeps (CRC
# renewed by train).
DRIVER = """import gc
import time


def load(n):
    global m, S
    import fwmodel
    import fwtrain
    m = S = None
    gc.collect()
    m = fwmodel.Model()
    print(m.load(bytearray(open(n, 'rb').read())))
    S = fwtrain.new(m)


def feed(n, rows, fl, mu):
    from fwtrain import train, f
    from struct import pack_into
    w = 4 * (m.d_in + m.d_out)
    g = bytearray(5 + w)
    p = bytearray(6 + 4 * m.d_out)
    g[0] = fl
    pack_into('<f', g, 1, mu)
    fh = open(n, 'rb')
    b = bytearray(w)
    us = u = 0
    ss = 0.0
    lo = 99999
    for r in range(rows):
        fh.readinto(b)
        for i in range(w):
            g[5 + i] = b[i]
        t = time.ticks_us()
        train(S, g, p, w)
        us += time.ticks_diff(time.ticks_us(), t)
        u += p[2]
        for i in range(m.d_out):
            ss += f(p, 6 + 4 * i)
        lo = min(lo, gc.mem_free())
    fh.close()
    print(u, repr(ss), us, lo)


def pull():
    print(''.join('%02x' % c for c in S[1]))
"""


# The micro:bit V1 cannot hold fwtrain next to fwmodel, its kernels and a
# driver (measured: ~1 KB short), so there the driver calls the rule
# (fwlearn.learn) itself, with the Thumb forward pass validating each sample,
# as fwtrain.train does; pull() renews the CRC-32 trailer like fwtrain.
LOADER_V1 = """import gc
from array import array
from os import size
import fwmodel
m = B = O = A = d = e = None


def go():
    # load m.ndm (called from a REPL line: fwmodel's loader nests calls)
    global m, B, O, A, d, e
    B = bytearray(size('m.ndm'))
    open('m.ndm', 'rb').readinto(B)
    m = fwmodel.Model()
    r = m.load(B)
    B = m.b
    d, e, k = B[6], B[7], B[8]
    O = array('i', [0] * (k + 1))
    p = 10 + 8 * d
    for a in range(k):
        O[a] = p + 1 + 2 * B[p]
        p = O[a] + 4 + 4 * e
    O[k] = p
    z = [0.0]
    A = (array('f', z * k), array('f', z * (d + e)), array('f', z * e))
    gc.collect()
    print(r)
"""

DRIVER_V1 = """import gc
import time
from struct import pack_into
from fwlearn import f, learn
from fwmodel import crc
from fwtld import m, B, O, A, d, e


def feed(n, rows, fl, mu):
    ph, v, y = A
    fh = open(n, 'rb')
    b = bytearray(4 * (d + e))
    us = u = 0
    ss = 0.0
    lo = 99999
    for r in range(rows):
        fh.readinto(b)
        for j in range(d + e):
            v[j] = f(b, 4 * j)
        t = time.ticks_us()
        if not m.infer(v, y):
            u += 1
            if fl:
                for i in range(e):
                    y[i] -= v[d + i]
            else:
                learn(m, B, O, ph, v, y, mu or 0.5)
            for i in range(e):
                ss += y[i] * y[i]
        us += time.ticks_diff(time.ticks_us(), t)
        lo = min(lo, gc.mem_free())
    fh.close()
    n = len(B) - 4
    pack_into('<I', B, n, crc(B, n))
    print(u, repr(ss), us, lo)
    fh = b = None
    gc.collect()
"""


def law() -> Model:
    """y = 2 t^2/p + 0.5 v p + 0.3 t v + 1 over t, p, v in [0.5, 2]."""
    w = [[2, -1, 0], [0, 1, 1], [1, 0, 1]]
    return Model(np.zeros(3), np.ones(3), w, np.log([2.0, 0.5, 0.3]), [[1.0], [1.0], [1.0]],
                 [1.0], ["t", "p", "v"], ["y"]).rounded_to_float32()


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


class MicrobitFeeling:
    """A virtual micro:bit with fwmodel + fwlearn + the driver and ``files`` (m.ndm, data).

    Data go in with the image and scripts stay under 48 bytes: the raw REPL's
    loader would cost ~800 B of the V1's heap. Importing the driver loads
    m.ndm; ``load()`` restarts MicroPython to serve the flashed model again.
    """

    def __init__(self, files):
        from ..vboard import MicrobitSession
        fw = firmware_dir()
        self.modules = modules()
        image = {n + ".py": (fw / (n + ".py")).read_bytes()
                 for n in set(self.modules + model_files()) - {"fwtld", "fwtdrv"}}
        image["fwtdrv.py"] = DRIVER_V1.encode()
        image["fwtld.py"] = LOADER_V1.encode()
        image.update(files)
        self.s = MicrobitSession(image)
        try:
            self._boot()
        except BaseException:
            self.s.stop()
            raise

    def _boot(self):
        self.s.run("import gc")
        for name in self.modules[:-1]:   # one import per script: the V1 compiles on import
            self.s.run("gc.collect()\nimport %s" % name)
            self.s.run("gc.collect()")  # the script's own parse leftovers too
            if name == "fwtld":
                out = self.s.run("fwtld.go()").split()
                if out != ["0"]:
                    raise RuntimeError("the board refused the model: %s" % out)
        self.s.run("gc.collect()\nimport fwtdrv as D")

    def stop(self):
        self.s.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def heap(self) -> int:
        return int(self.s.run("gc.collect()\nprint(gc.mem_free())"))

    def load(self):
        self.s.soft_reset()
        self._boot()

    def feed(self, name, rows, evaluate=False, mu=0.0):
        out = self.s.run("D.feed(%r,%d,%d,%r)" % (name, rows, 1 if evaluate else 0, mu),
                         timeout=600).split()
        used, sse, us, low = int(out[0]), float(out[1]), int(out[2]), int(out[3])
        return {"used": used, "sse": sse, "us": us, "heap_low": low}

    def rmse(self, name, rows, d_out):
        r = self.feed(name, rows, evaluate=True)
        return float(np.sqrt(r["sse"] / (r["used"] * d_out)))

    def pull(self) -> bytes:
        data = bytes.fromhex(self.s.run("for c in D.B:print('%02x'%c,end='')").strip())
        ndm.loads(data)               # CRC-32 and bounds checked
        return data


def labelled(X, Y) -> bytes:
    return np.hstack([X, Y]).astype("<f4").tobytes()


def host_anneal(X, Y, model, init=None):
    from ..anneal import Annealer
    t0 = time.perf_counter()
    a = Annealer(seed=0, reheat=REHEAT if init is not None else None)
    a.fit(X, Y, inputs=model.inputs, outputs=model.outputs, init=init)
    return a.model_, time.perf_counter() - t0


def run_scenarios(quick=False, log=print):
    model = law()
    blob = ndm.dumps(model)
    rng = np.random.default_rng(SEED)
    n_max = max(COUNTS)
    X = rng.uniform(0.5, 2.0, (n_max, 3))
    Xf = rng.uniform(0.5, 2.0, (FRESH, 3))
    spread = float(np.std(model.predict(Xf)))

    def noisy(y):
        return y + NOISE * spread * rng.standard_normal(y.shape)
    out = {"noise_rms": NOISE * spread, "scenarios": []}
    clean_files = {"m.ndm": blob, "c.bin": labelled(Xf, noisy(model.predict(Xf)))}
    for name, (target, truth) in scenarios(model).items():
        if quick and truth is None and name != "gain x1.3 / x0.8":
            continue
        log("feeling: %s" % name)
        Y = noisy(target(X))
        Yf = noisy(target(Xf))
        files = {"m.ndm": blob, "e.bin": labelled(Xf, Yf), "t.bin": labelled(X, Y)}
        if "clean_rmse" not in out:
            files.update(clean_files)
        row = {"scenario": name, "runs": []}
        with MicrobitFeeling(files) as board:
            if "clean_rmse" not in out:
                out["clean_rmse"] = board.rmse("c.bin", FRESH, 1)
            row["drifted_rmse"] = board.rmse("e.bin", FRESH, 1)
            for i, n in enumerate(COUNTS if not quick else (n_max,)):
                if i:
                    board.load()              # the flashed model again
                us = steps = 0
                low = 1 << 30
                t0 = time.perf_counter()
                for mu in feeling.schedule():
                    r = board.feed("t.bin", n, mu=mu)
                    us += r["us"]
                    steps += r["used"]
                    low = min(low, r["heap_low"])
                wall = time.perf_counter() - t0
                after = board.rmse("e.bin", FRESH, 1)
                pulled = ndm.loads(board.pull())
                host, secs = host_anneal(X[:n], Y[:n], model)
                run = {"samples": n, "board_rmse": after, "us_per_step": us / steps,
                       "heap_low": low, "wall_s": wall,
                       "pulled_rmse": feeling.rmse(pulled.predict(Xf), Yf),
                       "anneal_rmse": feeling.rmse(host.predict(Xf), Yf), "anneal_s": secs,
                       "anneal_k": host.k_star}
                if truth is not None:
                    remelt, rsecs = host_anneal(X[:n], Y[:n], model, init=pulled)
                    run.update(remelt_rmse=feeling.rmse(remelt.predict(Xf), Yf), remelt_s=rsecs,
                               remelt_exact=remelt.atom_set() == truth.atom_set())
                row["runs"].append(run)
        out["scenarios"].append(row)
    return out


def big_model_step():
    """µs per step and free heap while training a 30 -> 12, K = 6 model (or why it cannot)."""
    rng = np.random.default_rng(SEED + 1)
    d_in, d_out, k = 30, 12, 6
    w = np.zeros((k, d_in))
    for a in range(k):
        js = rng.choice(d_in, size=rng.integers(2, 5), replace=False)
        w[a, js] = rng.choice([-2, -1, 1, 2], size=js.size)
    model = Model(np.zeros(d_in), np.ones(d_in), w, rng.uniform(-1, 1, k),
                  rng.uniform(-2, 2, (k, d_out)), rng.uniform(-1, 1, d_out)).rounded_to_float32()
    X = rng.uniform(0.5, 2.0, (10, d_in))
    Xd = X * np.where(np.arange(d_in) == 0, 1.3, 1.0)
    blob = ndm.dumps(model)
    res = {"d_in": d_in, "d_out": d_out, "k": k, "ndm_bytes": len(blob)}

    from ..vboard import ReplError
    try:
        with MicrobitFeeling({"m.ndm": blob, "t.bin": labelled(X, model.predict(Xd))}) as board:
            r = board.feed("t.bin", len(X))
            res.update(us_per_step=r["us"] / max(1, r["used"]), heap_low=r["heap_low"])
    except ReplError as exc:
        res["error"] = str(exc).strip().splitlines()[-1][:120]
    return res


def render(res) -> str:
    lines = ["### feeling: on-board retraining (virtual micro:bit, MicroPython 1.9.2)", "",
             "Law 3 -> 1, K = 3, noise 1 %% of the spread (rms %.4g). Clean RMSE (pre-drift "
             "model, pre-drift data, board EVAL): %.4g. Each count is streamed %d times "
             "with mu = %s (the `ndyn retrain` default); RMSE on %d fresh drifted rows."
             % (res["noise_rms"], res["clean_rmse"], feeling.EPOCHS,
                ", ".join("%g" % m for m in feeling.schedule()), FRESH), "",
             "| scenario | samples | drifted RMSE | board RMSE after | / clean | / drifted "
             "| pulled (host) | host re-anneal (K, s) | µs/step | heap low (B) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in res["scenarios"]:
        for r in row["runs"]:
            lines.append("| %s | %d | %.4g | %.4g | %.2f | %.3f | %.4g | %.4g (%d, %.1f) | %.0f | %d |"
                         % (row["scenario"], r["samples"], row["drifted_rmse"], r["board_rmse"],
                            r["board_rmse"] / res["clean_rmse"],
                            r["board_rmse"] / row["drifted_rmse"], r["pulled_rmse"],
                            r["anneal_rmse"], r["anneal_k"], r["anneal_s"], r["us_per_step"],
                            r["heap_low"]))
    lines.append("")
    r = res["scenarios"][0]["runs"][-1]
    lines.append("Retraining on %d samples x %d passes: %.1f s of device time (virtual clock), "
                 "%.1f s wall on this host (driver on the board; the serial link is not in "
                 "this figure)." % (r["samples"], feeling.EPOCHS,
                                    r["us_per_step"] * r["samples"] * feeling.EPOCHS / 1e6,
                                    r["wall_s"]))
    lines.append("")
    for row in res["scenarios"]:
        for r in row["runs"]:
            if "remelt_rmse" in r:
                lines.append("Structural change (%s), %d samples: feeling alone RMSE %.4g; "
                             "remelting the pulled model on the host (reheat %g): RMSE %.4g, "
                             "exact new atoms: %s (%.1f s)."
                             % (row["scenario"], r["samples"], r["board_rmse"], REHEAT,
                                r["remelt_rmse"], "yes" if r["remelt_exact"] else "no",
                                r["remelt_s"]))
    big = res.get("big")
    if big and "error" not in big:
        lines += ["", "30 -> 12, K = 6 (.ndm %d B): %.0f µs per training step, lowest free heap "
                  "while training %d B." % (big["ndm_bytes"], big["us_per_step"], big["heap_low"])]
    elif big:
        lines += ["", "30 -> 12, K = 6 (.ndm %d B): does not fit the V1's heap next to the "
                  "Thumb kernels, fwmodel, the rule and the driver: %s."
                  % (big["ndm_bytes"], big["error"])]
    return "\n".join(lines) + "\n"


check_available = needs_qemu    # the registry asks before running the suite


def run(ctx=None):
    """The ``feeling`` suite (see the module docstring)."""
    from . import SuiteResult, as_context, progress_log
    ctx = as_context(ctx)
    log = progress_log(ctx)
    res = run_scenarios(ctx.quick, log)
    res["big"] = big_model_step()
    res["quick"] = bool(ctx.quick)
    md = render(res)
    res["markdown"] = md
    return SuiteResult("feeling", md, res)
