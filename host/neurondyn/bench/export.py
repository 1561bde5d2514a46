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
``arena_size`` that lets the interpreter allocate and invoke (bisection).
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
from ..model import Model
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
