"""``ndyn bench export``: what our model costs as ``.tflite``, C header and ``.ndm``,
beside an int8 MLP of (about) the same test error exported by the same writer.

Why: a reader choosing between "a crystallised power-law model" and "the usual
small int8 network" wants bytes, arena and MACs side by side, measured under
the real runtimes (ai-edge-litert, the successor of tflite-runtime, and the
TFLite-Micro Python interpreter), with the error each one actually reaches.

Task per size (3 -> 1, 10 -> 4, 30 -> 12): a hand-built model with K atoms,
1-4 non-zero integer exponents in {-2,-1,1,2} per atom, gains that keep each
atom of order one, inputs U[1, 5]; targets are the model's output plus 1 %
Gaussian noise (sd = 0.01 * std(y)) on train and test, so the model's own test
error is the noise floor.  Error = NRMSE = rms(pred - y) / std(y), averaged
over outputs.  The MLP (sklearn, ReLU, widths from a fixed ladder) is trained
until its *int8* test error is within ``MATCH_FACTOR`` of the model's, or the
ladder ends (then the closest one is reported and marked "not reached").

int8 export: weights symmetric per-tensor int8, biases int32 (scale =
s_in * s_w), activations asymmetric per-tensor int8 calibrated on the training
set; the graph is float in, QUANTIZE, FULLY_CONNECTED (+RELU) ..., DEQUANTIZE,
float out, so it has the same interface as our float graph.

TFLM arena bytes are measured in a subprocess per probe, since an arena that
is too small can crash the interpreter: "recorded" is the total printed by
``print_allocations`` (RecordingMicroAllocator), "minimal" the smallest
``arena_size`` that lets the interpreter allocate and invoke (bisection; it
is larger than "recorded" because allocation needs temporary planner memory).

Cost on the shared 2-core development machine: full run about 2 min (the MLP
ladder 8..128 dominates), ``--quick`` about 40 s.  Deterministic (fixed seeds).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from .. import export_c, export_tflite, ndm
from ..model import Model, relative_deviation
from ..tflite_writer import GraphWriter


SIZES = ((3, 1, 2), (10, 4, 4), (30, 12, 6))     # (d_in, d_out, K)
NOISE = 0.01
MATCH_FACTOR = 1.1
WIDTH_LADDER = (8, 16, 32, 64, 128)
WIDTH_LADDER_QUICK = (16, 64)
MEAN_LOG_U15 = (5 * np.log(5) - 4) / 4            # E[log x] for x ~ U[1, 5]


# -- the task -----------------------------------------------------------------
def random_model(d_in, d_out, k, rng, offset=None, scale=None) -> Model:
    """A crystallised model like the annealer produces (float32-exact parameters).

    Each atom has 1-4 non-zero exponents in {-2,-1,1,2}; its log-gain centres
    the atom near 1 for inputs U[1, 5] (the typical size of a fitted atom).
    """
    w = np.zeros((k, d_in))
    for a in range(k):
        nnz = int(rng.integers(1, min(4, d_in) + 1))
        cols = rng.choice(d_in, size=nnz, replace=False)
        w[a, cols] = rng.choice([-2, -1, 1, 2], size=nnz)
    c = -w.sum(axis=1) * MEAN_LOG_U15 + rng.normal(0, 0.5, size=k)
    a = rng.normal(0, 1, size=(k, d_out))
    b = rng.normal(0, 1, size=d_out)
    o = np.zeros(d_in) if offset is None else offset
    s = np.ones(d_in) if scale is None else scale
    return Model(o, s, w, c, a, b).rounded_to_float32()


def make_task(d_in, d_out, k, seed, n_train=2000, n_test=1000):
    """(model, X_train, Y_train, X_test, Y_test) for one benchmark size."""
    rng = np.random.default_rng(seed)
    model = random_model(d_in, d_out, k, rng)
    X = rng.uniform(1, 5, size=(n_train + n_test, d_in)).astype(np.float32).astype(np.float64)
    Y = model.predict(X)
    Y = Y + rng.normal(size=Y.shape) * NOISE * Y.std(axis=0)
    return model, X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


def nrmse(pred, y) -> float:
    """rms error / std of the target, averaged over outputs."""
    pred, y = np.asarray(pred).reshape(y.shape), np.asarray(y)
    return float(np.mean(np.sqrt(np.mean((pred - y) ** 2, axis=0)) / y.std(axis=0)))


# -- runtimes ---------------------------------------------------------------------
def run_litert(blob: bytes, X) -> np.ndarray:
    """Row-by-row inference under ai-edge-litert (tflite-runtime where that is installed)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # an edge board with numpy < 2 and the old runtime
        from tflite_runtime.interpreter import Interpreter
    it = Interpreter(model_content=blob)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    X = np.asarray(X, dtype=np.float32)
    res = []
    for row in X:
        it.set_tensor(inp, row.reshape(1, -1))
        it.invoke()
        res.append(it.get_tensor(out)[0].copy())
    return np.array(res, dtype=np.float64)


def run_tflm(blob: bytes, X) -> np.ndarray:
    """Row-by-row inference under the TFLite-Micro Python interpreter."""
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_bytes(blob, arena_size=max(64 * 1024, 16 * len(blob)))
    X = np.asarray(X, dtype=np.float32)
    res = []
    for row in X:
        it.set_input(row.reshape(1, -1), 0)
        it.invoke()
        res.append(np.array(it.get_output(0)).reshape(-1).copy())
    return np.array(res, dtype=np.float64)


_PROBE = r"""
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
blob = open(sys.argv[1], "rb").read()
it = runtime.Interpreter.from_bytes(blob, arena_size=int(sys.argv[2]))
shape = it.get_input_details(0)["shape"]
it.set_input(np.ones(shape, np.float32) * 2.0, 0)
it.invoke()
sys.stdout.write("OK\n"); sys.stdout.flush()
if len(sys.argv) > 3:
    it.print_allocations()
"""


def _probe(path, arena, allocations=False):
    """Run one TFLM allocate+invoke in a fresh process; (ok, stderr)."""
    cmd = [sys.executable, "-c", _PROBE, path, str(int(arena))] + (["print"] if allocations else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return proc.returncode == 0 and "OK" in proc.stdout, proc.stderr


def tflm_arena(blob: bytes, search=True) -> dict:
    """TFLM arena bytes: {"recorded": print_allocations total, "minimal": bisection or None}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as fh:
            fh.write(blob)
        big = max(64 * 1024, 16 * len(blob))
        ok, err = _probe(path, big, allocations=True)
        if not ok:
            raise RuntimeError("TFLM cannot run this model: %s" % err.strip()[-300:])
        m = re.search(r"Arena allocation total (\d+) bytes", err)
        recorded = int(m.group(1)) if m else None
        minimal = None
        if search:
            lo, hi = 0, big                 # lo fails (or is 0), hi works
            while hi - lo > 16:
                mid = (lo + hi) // 2
                if _probe(path, mid)[0]:
                    hi = mid
                else:
                    lo = mid
            minimal = hi
    return {"recorded": recorded, "minimal": minimal}


# -- the int8 MLP -------------------------------------------------------------------
def _affine_int8(lo, hi):
    """Per-tensor asymmetric int8 (scale, zero_point) whose range holds [lo, hi] and 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max(hi - lo, 1e-8) / 255.0
    zero_point = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zero_point


def mlp_layers(mlp, x_mean, x_std, y_mean, y_std):
    """sklearn MLPRegressor trained on standardised data -> [(W (out, in), b)] on raw units."""
    layers = [(np.array(c).T.copy(), np.array(b).copy()) for c, b in zip(mlp.coefs_, mlp.intercepts_)]
    w0, b0 = layers[0]
    w0 = w0 / x_std
    layers[0] = (w0, b0 - w0 @ x_mean)
    wl, bl = layers[-1]
    layers[-1] = (wl * y_std[:, None], bl * y_std + y_mean)
    return layers


def mlp_forward(layers, X) -> list:
    """Float forward pass; returns every layer's output (ReLU between layers)."""
    outs, h = [], np.asarray(X, dtype=np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
        outs.append(h)
    return outs


def mlp_int8_tflite(layers, X_calib):
    """An int8 ``.tflite``: float in -> QUANTIZE -> int8 FULLY_CONNECTED(+RELU)... -> DEQUANTIZE.

    Activation ranges come from a float pass over ``X_calib`` (the training set).
    Returns (bytes, output scale): one output LSB in the target's units.
    """
    X_calib = np.asarray(X_calib, dtype=np.float64)
    acts = [X_calib] + mlp_forward(layers, X_calib)
    qs = [_affine_int8(a.min(), a.max()) for a in acts]
    d_in, d_out = layers[0][0].shape[1], layers[-1][0].shape[0]
    g = GraphWriter(description="int8 MLP %s" % "-".join(
        str(n) for n in [d_in] + [w.shape[0] for w, _ in layers]))
    raw = g.tensor("raw", [1, d_in])
    h = g.tensor("raw_q", [1, d_in], dtype="int8", scale=qs[0][0], zero_point=qs[0][1])
    g.op("QUANTIZE", [raw], [h])
    for i, (w, b) in enumerate(layers):
        s_w = float(np.float32(max(np.abs(w).max(), 1e-8) / 127.0))
        wq = np.clip(np.round(w / s_w), -127, 127)
        s_b = qs[i][0] * s_w
        bq = np.round(b / s_b)
        wt = g.tensor("w%d" % i, w.shape, dtype="int8", data=wq, scale=s_w, zero_point=0)
        bt = g.tensor("b%d" % i, [w.shape[0]], dtype="int32", data=bq, scale=s_b, zero_point=0)
        out = g.tensor("h%d" % (i + 1), [1, w.shape[0]], dtype="int8",
                       scale=qs[i + 1][0], zero_point=qs[i + 1][1])
        last = i == len(layers) - 1
        g.op("FULLY_CONNECTED", [h, wt, bt], [out], version=4,
             activation=None if last else "relu")
        h = out
    y = g.tensor("y", [1, d_out])
    g.op("DEQUANTIZE", [h], [y], version=2)
    g.inputs, g.outputs = [raw], [y]
    return g.to_bytes(), qs[-1][0]


def train_mlp(width, X, Y, seed, quick):
    """Two ReLU hidden layers of ``width``, standardised inputs/outputs, Adam.

    Early stopping on a 15 % validation split: wider nets overfit 2-4k samples
    otherwise (seen: test error growing with width), and it bounds the time.
    """
    from sklearn.neural_network import MLPRegressor
    x_mean, x_std = X.mean(axis=0), X.std(axis=0)
    y_mean, y_std = Y.mean(axis=0), Y.std(axis=0)
    mlp = MLPRegressor(hidden_layer_sizes=(width, width), activation="relu", solver="adam",
                       learning_rate_init=1e-3, alpha=1e-5, batch_size=128,
                       max_iter=150 if quick else 500, early_stopping=True,
                       validation_fraction=0.15, tol=1e-6, n_iter_no_change=25,
                       random_state=seed)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # ConvergenceWarning at max_iter is expected
        mlp.fit((X - x_mean) / x_std, (Y - y_mean) / y_std)
    return mlp_layers(mlp, x_mean, x_std, y_mean, y_std)


# -- sizes and counts ---------------------------------------------------------------
def model_macs(model: Model) -> dict:
    """Work per inference of our graph and of the C reference path."""
    k, d_in, d_out = model.k_star, model.d_in, model.d_out
    nz = model.exponents[model.exponents != 0]
    return {
        "fc_macs": k * d_in + k * d_out + d_in if k else d_out * d_in,   # + the NaN guard
        "transcendentals": d_in + k,                                      # LOG per input, EXP per atom
        "c_mul_div": d_in + int(nz.size) + int(np.sum(np.abs(nz) == 2)) + k + k * d_out,
    }


def compiled_c_bytes(header: bytes):
    """text+data bytes of ndyn_predict compiled by the host gcc -Os (None without gcc)."""
    import shutil
    if not shutil.which("gcc") or not shutil.which("size"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "model.h"), "wb") as fh:
            fh.write(header)
        with open(os.path.join(tmp, "unit.c"), "w") as fh:
            fh.write('#include "model.h"\nint predict(const float *in, float *out);\n'
                     "int predict(const float *in, float *out) { return ndyn_predict(in, out); }\n")
        subprocess.run(["gcc", "-std=c99", "-Os", "-c", "unit.c", "-o", "unit.o"],
                       cwd=tmp, check=True, capture_output=True)
        out = subprocess.run(["size", "unit.o"], cwd=tmp, check=True,
                             capture_output=True, text=True).stdout.splitlines()
        text, data, bss = (int(v) for v in out[1].split()[:3])
        return text + data


def parity(got, host) -> float:
    """Worst |got - host| / (|host| + rms(host)) over rows and outputs."""
    return relative_deviation(got, host, axis=0)


# -- the suite ------------------------------------------------------------------------
def bench_size(d_in, d_out, k, quick, log=lambda msg: None) -> dict:
    """Our model's artifacts and the MLP ladder for one (d_in, d_out, K); JSON-ready."""
    seed = 600 + d_in
    model, X, Y, Xt, Yt = make_task(d_in, d_out, k, seed, n_train=2000 if quick else 4000)
    host = model.predict(Xt)
    blob = export_tflite.to_bytes(model)
    header = export_c.to_bytes(model)
    ours_lite, ours_tflm = run_litert(blob, Xt), run_tflm(blob, Xt)
    ours = {
        "k": k, "tflite_bytes": len(blob), "c_header_bytes": len(header),
        "c_compiled_bytes": compiled_c_bytes(header),
        "ndm_bytes": len(ndm.dumps(model)), "ndm_bytes_no_names": len(ndm.dumps(model, names=False)),
        "arena": tflm_arena(blob, search=not quick),
        "nrmse_host": nrmse(host, Yt), "nrmse_litert": nrmse(ours_lite, Yt),
        "nrmse_tflm": nrmse(ours_tflm, Yt),
        "parity_litert": parity(ours_lite, host), "parity_tflm": parity(ours_tflm, host),
    }
    ours.update(model_macs(model))
    target = MATCH_FACTOR * ours["nrmse_host"]
    log("export %d->%d: ours NRMSE %.4f, training MLPs to <= %.4f"
        % (d_in, d_out, ours["nrmse_host"], target))
    tried, best = [], None
    for width in (WIDTH_LADDER_QUICK if quick else WIDTH_LADDER):
        t0 = time.perf_counter()
        layers = train_mlp(width, X, Y, seed, quick)
        train_s = time.perf_counter() - t0
        mblob, out_lsb = mlp_int8_tflite(layers, X)
        m_lite = run_litert(mblob, Xt)
        entry = {"width": width, "train_s": train_s, "tflite_bytes": len(mblob),
                 "params": int(sum(w.size + b.size for w, b in layers)),
                 "fc_macs": int(sum(w.size for w, _ in layers)),
                 "nrmse_float": nrmse(mlp_forward(layers, Xt)[-1], Yt),
                 "nrmse_litert": nrmse(m_lite, Yt), "output_lsb": out_lsb,
                 "_blob": mblob, "_lite": m_lite}
        tried.append(entry)
        log("  MLP %d-%d-%d-%d: float NRMSE %.4f, int8 NRMSE %.4f"
            % (d_in, width, width, d_out, entry["nrmse_float"], entry["nrmse_litert"]))
        if best is None or entry["nrmse_litert"] < best["nrmse_litert"]:
            best = entry
        if entry["nrmse_litert"] <= target:
            break
    m_tflm = run_tflm(best["_blob"], Xt)
    best["nrmse_tflm"] = nrmse(m_tflm, Yt)
    best["tflm_vs_litert_max_lsb"] = float(np.max(np.abs(m_tflm - best["_lite"])) / best["output_lsb"])
    best["arena"] = tflm_arena(best["_blob"], search=not quick)
    best["reached"] = bool(best["nrmse_litert"] <= target)
    for e in tried:
        e.pop("_blob", None)
        e.pop("_lite", None)
    return {"d_in": d_in, "d_out": d_out, "target_nrmse": target, "ours": ours,
            "mlp": best, "mlp_ladder": tried}


def _arena(a):
    if a["minimal"] is None:
        return "%d" % a["recorded"]
    return "%d / %d" % (a["recorded"], a["minimal"])


def render(results, quick) -> str:
    from .table import md_table
    rows = []
    for r in results:
        o, m = r["ours"], r["mlp"]
        task = "%d -> %d" % (r["d_in"], r["d_out"])
        rows.append([task, "ours K=%d, float32 .tflite" % o["k"], o["tflite_bytes"], _arena(o["arena"]),
                     "%d (+%d LOG/EXP)" % (o["fc_macs"], o["transcendentals"]),
                     "%.4f / %.4f" % (o["nrmse_litert"], o["nrmse_tflm"])])
        rows.append([task, "ours, C header (x86-64 -Os code+data)",
                     "%d (%s)" % (o["c_header_bytes"], o["c_compiled_bytes"]), "-",
                     "%d mul/div" % o["c_mul_div"], "%.4f (host)" % o["nrmse_host"]])
        rows.append([task, "ours, .ndm (without names)",
                     "%d (%d)" % (o["ndm_bytes"], o["ndm_bytes_no_names"]), "-", "-", "-"])
        rows.append([task, "MLP %d-%d-%d-%d int8 .tflite%s" % (
                         r["d_in"], m["width"], m["width"], r["d_out"],
                         "" if m["reached"] else " (target not reached)"),
                     m["tflite_bytes"], _arena(m["arena"]), m["fc_macs"],
                     "%.4f / %.4f" % (m["nrmse_litert"], m["nrmse_tflm"])])
    table = md_table(["task", "artifact", "bytes", "TFLM arena B (recorded / minimal)",
                      "MACs per inference", "test NRMSE (litert / TFLM)"], rows)
    par = md_table(["task", "ours .tflite vs predict: litert", "TFLM", "MLP int8: TFLM vs litert, max diff (output LSBs)",
                    "MLP float NRMSE", "MLP widths tried (int8 NRMSE)"],
                   [["%d -> %d" % (r["d_in"], r["d_out"]), "%.1e" % r["ours"]["parity_litert"],
                     "%.1e" % r["ours"]["parity_tflm"], "%.2g" % r["mlp"]["tflm_vs_litert_max_lsb"],
                     "%.4f" % r["mlp"]["nrmse_float"],
                     ", ".join("%d (%.3f)" % (e["width"], e["nrmse_litert"]) for e in r["mlp_ladder"])]
                    for r in results])
    note = ("Targets carry 1 %% noise (sd = 0.01 std(y)), so our model's test NRMSE is the noise "
            "floor; the MLP must reach <= %.1fx that in int8. Parity = worst |tflite - predict| / "
            "(|predict| + rms(predict)) over the test rows.%s"
            % (MATCH_FACTOR, " Quick run: short MLP ladder, no arena bisection." if quick else ""))
    return "### export\n\n" + table + "\n\n" + par + "\n\n" + note + "\n"


def _size_task(spec) -> dict:
    """One benchmark size as a runner task (module level: it may go to a worker process)."""
    return bench_size(spec["d_in"], spec["d_out"], spec["k"], spec["quick"])


def run(ctx=None):
    """The ``export`` suite of ``ndyn bench`` (see the module docstring).

    Each size is one task of ``bench.runner.run_tasks``: single-threaded BLAS,
    a progress bar, and with ``--json`` a checkpoint so an interrupted run resumes.
    """
    from . import SuiteResult, as_context
    from .runner import run_tasks
    ctx = as_context(ctx)
    mode = "quick" if ctx.quick else "full"
    specs = [{"key": "export:%d-%d-%d:%s" % (d_in, d_out, k, mode),
              "d_in": d_in, "d_out": d_out, "k": k, "quick": bool(ctx.quick)}
             for d_in, d_out, k in SIZES]
    checkpoint = ctx.checkpoint + ".export.jsonl" if ctx.checkpoint else None
    results = run_tasks(_size_task, specs, jobs=ctx.jobs, checkpoint=checkpoint,
                        progress=ctx.progress, label="export")
    return SuiteResult("export", render(results, ctx.quick),
                       {"sizes": results, "noise": NOISE, "match_factor": MATCH_FACTOR,
                        "quick": bool(ctx.quick)})
