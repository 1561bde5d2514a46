"""The ``device`` suite of ``ndyn bench``: our model on the virtual micro:bit.

For hand-built 3 -> 1 (K = 2), 10 -> 4 (K = 4) and 30 -> 12 (K = 6, 2-4
non-zero exponents per atom) models (random integer exponents, realistic
gains, public seeds) it measures, on the virtual micro:bit V1 (QEMU,
MicroPython 1.9.2, ``-icount shift=6``: a deterministic ~16 MHz clock, µs
from ``time.ticks_us``), with the image ``ndyn flash`` builds, serving over
its pty through the real protocol (``neurondyn.link.Board``):

- the ``.ndm`` size and the free heap while serving (HELLO: gc.mem_free()
  after a collection, the firmware, its buffers and the model in place);
- device µs per inference (the firmware's STATS: ``ticks_us`` around the
  INFER kernel, per sample) and the worst deviation of the board's answers
  from the float64 host (``Model.predict``) relative to ``|host| + rms(host)``,
  float32 and int16 inputs;
- beside it, a dense one-hidden-layer MLP in plain MicroPython
  (``firmware/fwmlp.py``, run from the REPL of a board with nothing else
  loaded) trained on the host (scikit-learn) on the same task (targets with
  1 % noise): the smallest hidden width whose test NRMSE is within
  MATCH_FACTOR of our model's (the noise floor) and whose weights fit the
  V1's heap; its error, parameters and µs per inference;
- compute-bound samples/s (1e6 / µs) vs link-bound samples/s at 115200 baud
  (11,520 bytes/s, 10 bits a byte) for float32 and int16 inputs, from the
  wire bytes of docs/protocol.md with the micro:bit's limits (stop-and-wait,
  53-byte frame payloads, 244-byte messages, 100-byte replies).
"""
from __future__ import annotations

import ast
import time

import numpy as np

from ..model import Model, relative_deviation
from .. import ndm
from ..paths import firmware_dir
from . import needs_qemu

SIZES = [(3, 1, 2, (1, 3)), (10, 4, 4, (1, 3)), (30, 12, 6, (2, 4))]
SEED = 20260
NOISE = 0.01
MATCH_FACTOR = 1.5
E2E_ROWS = 400             # rows streamed to time the end-to-end rate
HIDDEN = (2, 4, 8, 12, 16, 24)
MLP_MAX_FLOATS = 900            # ~3.6 KB of weights: what the V1 heap can still hold
BAUD_BYTES = 115200 / 10.0
# micro:bit limits from its HELLO (docs/protocol.md §3)
MAX_PAYLOAD, MAX_MSG, MAX_REPLY = 53, 244, 100

DRIVER = """import gc
import time
from array import array


def run(m, name, size, rows, d_in, d_out):
    global x, y, f, b
    gc.collect()
    h0 = gc.mem_free()
    if size:
        b = bytearray(size)
        f = open(name, 'rb')
        f.readinto(b)
        f.close()
        m.load(b)
        b = None
    else:
        m.load(name)
    gc.collect()
    print('heap', h0, gc.mem_free())
    x = array('f', [0.0] * d_in)
    y = array('f', [0.0] * d_out)
    f = open('x.bin', 'rb')
    for i in range(rows):
        f.readinto(x)
        t = time.ticks_us()
        rc = m.infer(x, y)
        t = time.ticks_diff(time.ticks_us(), t)
        print('y', rc, t, bytes(y))
    f.close()
"""

def make_model(d_in, d_out, k, nnz, rng) -> Model:
    """Random integer exponents in -2..2 (nnz[0]..nnz[1] non-zero per atom),
    gains e^c with c ~ N(0, 0.5), readout ~ N(0, 1): a plausible crystallised model."""
    w = np.zeros((k, d_in))
    for a in range(k):
        idx = rng.choice(d_in, min(d_in, int(rng.integers(nnz[0], nnz[1] + 1))), replace=False)
        w[a, idx] = rng.choice([-2, -1, 1, 2], idx.size)
    return Model(np.zeros(d_in), np.ones(d_in), w, rng.normal(0, 0.5, k),
                 rng.normal(0, 1, (k, d_out)), rng.normal(0, 0.2, d_out)).rounded_to_float32()


def nrmse(pred, y) -> float:
    """RMSE / std per output, averaged over outputs."""
    return float(np.mean(np.sqrt(np.mean((pred - y) ** 2, axis=0)) / np.std(y, axis=0)))


def make_task(model, rng, n_train=2000, n_test=500):
    x = np.asarray(rng.uniform(0.5, 2.0, (n_train + n_test, model.d_in)), np.float32).astype(float)
    clean = model.predict(x)
    y = clean + rng.normal(0, 1, clean.shape) * NOISE * np.std(clean, axis=0)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def fold_mlp(mlp, sx, sy):
    """sklearn MLP on standardised data -> raw-unit weights (W1, b1, W2, b2)."""
    w1 = mlp.coefs_[0].T / sx.scale_
    b1 = mlp.intercepts_[0] - w1 @ sx.mean_
    w2 = mlp.coefs_[1].T * sy.scale_[:, None]
    b2 = mlp.intercepts_[1] * sy.scale_ + sy.mean_
    return w1, b1, w2, b2


def mlp_forward(weights, x):
    w1, b1, w2, b2 = weights
    return np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2


def mlp_blob(weights) -> bytes:
    w1, b1, w2, b2 = weights
    head = bytes([w1.shape[1], w1.shape[0], w2.shape[0], 0])
    return head + np.concatenate([w1.ravel(), b1, w2.ravel(), b2]).astype("<f4").tobytes()


def train_mlp(xtr, ytr, xte, yte, target, quick):
    """Smallest hidden width (that fits the V1) reaching target NRMSE, else the best."""
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import StandardScaler
    import warnings
    sx, sy = StandardScaler().fit(xtr), StandardScaler().fit(ytr)
    best = None
    d_in, d_out = xtr.shape[1], ytr.shape[1]
    for h in HIDDEN[:4] if quick else HIDDEN:
        floats = h * (d_in + 1 + d_out) + d_out
        if floats > MLP_MAX_FLOATS:
            break
        mlp = MLPRegressor(hidden_layer_sizes=(h,), activation="relu", solver="lbfgs",
                           max_iter=300 if quick else 3000, random_state=SEED, tol=1e-9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlp.fit(sx.transform(xtr), sy.transform(ytr))
        weights = fold_mlp(mlp, sx, sy)
        err = nrmse(mlp_forward(weights, xte), yte)
        cand = {"hidden": h, "params": floats, "nrmse": err, "weights": weights}
        if best is None or err < best["nrmse"]:
            best = cand
        if err <= target:
            return cand, True
    return best, False


def parse_rows(out):
    lines = out.splitlines()
    heap = [l.split() for l in lines if l.startswith("heap")][0]
    rows = [l.split(None, 3) for l in lines if l.startswith("y ")]
    y = np.array([np.frombuffer(ast.literal_eval(r[3]), "<f4") for r in rows], np.float64)
    return (int(heap[1]), int(heap[2]), [int(r[1]) for r in rows], [int(r[2]) for r in rows], y)


def worst_dev(host, dev) -> float:
    """max |dev - host| / (|host| + rms(host)), rms per row."""
    return relative_deviation(dev, host, axis=1)


def heap_free(board) -> int:
    return int(board.run("import gc\ngc.collect()\nprint(gc.mem_free())").strip())


def measure(files, imports, make, d_in, d_out, rows, size=0):
    """Boot a fresh virtual micro:bit, import, load, run rows; heap + timings + outputs."""
    from ..vboard import MicrobitSession
    files = dict(files, **{"fwdrv.py": DRIVER})
    with MicrobitSession(files) as board:
        free = {"boot": heap_free(board)}
        for name in imports:
            board.run("import %s" % name)
        free["imported"] = heap_free(board)
        board.run("import fwdrv")
        board.run("M=" + make)
        # short scripts go to the raw REPL directly; longer ones through the
        # harness loader, whose extra frames overflow the V1's small stack
        out = board.run("fwdrv.run(M,'m.bin',%d,%d,%d,%d)" % (size, rows, d_in, d_out),
                        timeout=600)
    h0, h1, codes, us, y = parse_rows(out)
    free["before_load"], free["loaded"] = h0, h1
    return free, codes, us, y


def serve(model, x) -> dict:
    """Boot the V1 with ``model`` (the image ndyn flash builds), stream ``x`` over its
    pty (float32, then int16); heap, device µs per inference, worst deviation."""
    from .. import boards, deploy, protocol as P
    from ..errors import DeviceError
    from ..link import Board
    from ..vboard import MicrobitVM
    blob = ndm.dumps(model)
    files = deploy.image_files(boards.get_profile("microbit-v1"), blob)
    with MicrobitVM(files=files) as vm:
        info = deploy.wait_for_hello(vm.port, 90, give_up=vm.boot_error)
        if info is None:
            raise DeviceError("the virtual micro:bit did not serve: %s" % vm.boot_error())
        with Board.open(vm.port, timeout=2.0) as b:
            heap = b.hello()["heap_free"]
            s0 = b.stats()
            y, st = b.infer(x)
            s1 = b.stats()
            y16, st16 = b.infer(x, int16=True)
            deq = P.dequantize_int16(P.quantize_int16(x, *b._qscale), *b._qscale)
            # end to end through the emulator: host framing, the pty, QEMU's UART, the board
            many = np.tile(x, (E2E_ROWS // len(x) + 1, 1))[:E2E_ROWS]
            e2e = {}
            for fmt, flag in (("f32", False), ("i16", True)):
                t0 = time.perf_counter()
                b.infer(many, int16=flag)
                e2e[fmt] = E2E_ROWS / (time.perf_counter() - t0)
        if st.any() or st16.any():
            raise DeviceError("the board refused rows of the bench: %s %s" % (st, st16))
    n = s1["samples"] - s0["samples"]
    return {"heap_serving": heap, "us": (s1["infer_us"] - s0["infer_us"]) / n,
            "dev": worst_dev(model.predict(x), y), "dev_int16": worst_dev(model.predict(deq), y16),
            "fast_paths": info["fast_paths"], "e2e_per_s_f32": e2e["f32"],
            "e2e_per_s_i16": e2e["i16"]}


def link_bound(d_in, d_out, int16) -> tuple:
    """(wire bytes per sample, samples/s) of INFER at 115200 baud, micro:bit limits."""
    from ..protocol import wire_size
    width = (2 if int16 else 4) * d_in
    per = min((MAX_MSG - 1) // width, MAX_REPLY // (1 + 4 * d_out))
    msg = 1 + per * width
    frags = [MAX_PAYLOAD] * (msg // MAX_PAYLOAD) + ([msg % MAX_PAYLOAD] if msg % MAX_PAYLOAD else [])
    wire = sum(wire_size(n) for n in frags) + (len(frags) - 1) * wire_size(0)
    wire += wire_size(per * (1 + 4 * d_out))
    return wire / per, BAUD_BYTES * per / wire


def bench_size(d_in, d_out, k, nnz, quick, log):
    rng = np.random.default_rng(SEED + d_in)
    model = make_model(d_in, d_out, k, nnz, rng)
    xtr, ytr, xte, yte = make_task(model, rng)
    ours = nrmse(model.predict(xte), yte)
    log("device %d->%d: training the MLP baseline" % (d_in, d_out))
    mlp, matched = train_mlp(xtr, ytr, xte, yte, MATCH_FACTOR * ours, quick)
    rows = 8 if quick else 20
    x = xte[:rows]
    blob = ndm.dumps(model, names=False)
    common = {"x.bin": np.asarray(x, "<f4").tobytes()}
    fw = lambda names: {n + ".py": (firmware_dir() / (n + ".py")).read_bytes() for n in names}
    host = model.predict(x)
    res = {"d_in": d_in, "d_out": d_out, "k": k, "ndm_bytes": len(blob),
           "ndm_bytes_with_names": len(ndm.dumps(model)), "our_nrmse": ours}
    log("device %d->%d: serving on the virtual micro:bit" % (d_in, d_out))
    res.update(serve(model, x))
    log("device %d->%d: MLP (hidden %d) on the virtual micro:bit" % (d_in, d_out, mlp["hidden"]))
    files = dict(common, **fw(["fwmlp"]), **{"m.bin": mlp_blob(mlp["weights"])})
    mfree, _, mus, my = measure(files, ["fwmlp"], "fwmlp.MLP()", d_in, d_out, rows)
    res["mlp"] = {"hidden": mlp["hidden"], "params": mlp["params"], "nrmse": mlp["nrmse"],
                  "matched": matched, "us": float(np.median(mus)),
                  "dev": worst_dev(mlp_forward(mlp["weights"], x), my),
                  "heap_loaded": mfree["loaded"]}
    res["compute_per_s"] = 1e6 / res["us"]
    for fmt, flag in (("f32", False), ("i16", True)):
        b, s = link_bound(d_in, d_out, flag)
        res["wire_bytes_per_sample_" + fmt] = b
        res["link_per_s_" + fmt] = s
    return res


def render(results, quick) -> str:
    from .table import md_table, sci
    rows = []
    for r in results:
        m = r["mlp"]
        rows.append([
            "%d->%d K=%d" % (r["d_in"], r["d_out"], r["k"]),
            "%d (%d)" % (r["ndm_bytes"], r["ndm_bytes_with_names"]),
            "%d" % r["heap_serving"],
            "%.0f" % r["us"],
            "%s / %s" % (sci(r["dev"]), sci(r["dev_int16"])),
            "h=%d, %d params, NRMSE %s (ours %s)%s" % (m["hidden"], m["params"], sci(m["nrmse"]),
                                                        sci(r["our_nrmse"]),
                                                        "" if m["matched"] else " not matched"),
            "%.0f" % m["us"],
            "%.0fx" % (m["us"] / r["us"]),
            "%.0f" % r["compute_per_s"],
            "%.0f (%.0f B)" % (r["link_per_s_f32"], r["wire_bytes_per_sample_f32"]),
            "%.0f (%.0f B)" % (r["link_per_s_i16"], r["wire_bytes_per_sample_i16"]),
            "%.0f / %.0f" % (r["e2e_per_s_f32"], r["e2e_per_s_i16"]),
        ])
    table = md_table(["model", ".ndm bytes (with names)", "heap free while serving B",
                      "µs / inference", "worst dev f32 / int16", "MLP baseline",
                      "MLP µs", "speed-up", "compute-bound /s", "link-bound /s f32 (wire B)",
                      "link-bound /s int16 (wire B)", "end to end /s f32 / int16"], rows)
    note = ("Virtual micro:bit V1 (QEMU `-icount shift=6`, MicroPython 1.9.2) serving the image "
            "`ndyn flash` builds, over its pty through the protocol; %d samples a model. Heap: "
            "HELLO's gc.mem_free() after a collection while serving (firmware, buffers, model). "
            "µs: the firmware's STATS (ticks_us around the Thumb INFER kernel), per sample. "
            "worst dev = max |board - host| / (|host| + rms(host)), float32 and int16 inputs "
            "(int16: against the host on the dequantised inputs). MLP: scikit-learn, ReLU, "
            "weights folded to raw units, plain MicroPython on a board with nothing else loaded, "
            "the smallest width within %.1fx of our NRMSE that fits the heap, else the best "
            "that fits (\"not matched\": no MLP of equal error fits the V1, so the speed-up is a "
            "lower bound). Link-bound: stop-and-wait INFER at 115200 baud with the micro:bit's "
            "frame limits (wire bytes per sample in brackets). End to end: %d rows streamed by "
            "the host through the emulator (pty and QEMU's UART are not rate-limited to 115200 "
            "baud, so this is the protocol and the board, not the wire)."
            % (8 if quick else 20, MATCH_FACTOR, E2E_ROWS))
    return "### device\n\n" + table + "\n\n" + note + "\n"


check_available = needs_qemu    # the registry asks before running the suite


def run(ctx=None):
    """The ``device`` suite (see the module docstring)."""
    from . import SuiteResult, as_context, progress_log
    ctx = as_context(ctx)
    log = progress_log(ctx)
    results = [bench_size(*size, ctx.quick, log) for size in SIZES]
    return SuiteResult("device", render(results, ctx.quick),
                       {"sizes": results, "quick": bool(ctx.quick), "markdown_note": "see markdown"})
