"""Feeling: the board retrains its own parameters from labelled samples (docs/feeling.md).

The exponents (which inputs each atom multiplies, and how) stay fixed; the
board adapts the log-gains ``c``, the readout ``a`` and the bias ``b``. Why
that split: a sensor gain drift ``x_j -> g x_j`` is exactly a shift of every
``c_k`` by ``w_kj log g``, an output offset is ``b``, an output scale is ``a``.

Default step rule (no hyperparameter to choose): normalised LMS on all three,

    phi_k = e^c_k prod_j x_j^w_kj,  e = y - target,
    r     = mu / (1 + |phi|^2 + sum_k phi_k^2 |a_k|^2)
    c_k  -= r * phi_k * (a_k . e)     (a plain step on c = an exponentiated step on e^c)
    a_k  -= r * phi_k * e
    b    -= r * e

The denominator bounds the largest eigenvalue of ``J J^T`` (J = dy/d(c, a, b)),
so a step never overshoots for any ``mu`` in (0, 2), whatever the units of the
sensors: a fixed-rate SGD step diverged on the virtual micro:bit, this one does
not. Default schedule (``schedule``): EPOCHS = 4 passes over the samples with
mu = 1.5, 0.75, 0.375, 0.19 (halved each pass: large steps converge, small
ones average the noise out); measured on the bench's drift scenarios, a
constant mu = 0.5 stayed at ~3x the clean RMSE after 400 noisy samples, the
halving schedule reaches ~1.1x. The board runs the same rule in float32
(the Thumb kernel trn of firmware/asm/fwftrn.py on the micro:bit V1,
``fwplain.trn`` elsewhere); ``Feeler`` here mirrors it in numpy for tests and host-side comparisons.

This module also holds the host side of the protocol messages (PULL, TRAIN;
docs/protocol.md, docs/feeling.md) and the commit (PULL + upload) as functions over a connected
``neurondyn.link.Board``, and ``retrain``: the whole ``ndyn retrain`` flow.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

from . import ndm, protocol as P
from .errors import DeviceError, UserError
from .model import Model

FLAG_EVAL = 0x01
MU = 1.5                      # default step of the first pass (then halved each pass)
HOLDOUT = 0.2                 # default fraction of rows the board evaluates on
EPOCHS = 4                    # default passes over the training rows
STRUCTURAL = 0.05             # refit RMSE above this fraction of the target's spread
TRAIN_HEADER = 5              # flags u8 + mu f32


# -- the update rule (host mirror of the board's trn) ----------------------
class Feeler:
    """A model's trainable parameters and the board's step rule, in numpy."""

    def __init__(self, model: Model, dtype=np.float64):
        self.model = model
        self.dtype = dtype
        self.c = np.array(model.log_gain, dtype=dtype)
        self.a = np.array(model.readout, dtype=dtype)
        self.b = np.array(model.bias, dtype=dtype)

    def monomials(self, raw) -> np.ndarray:
        """prod_j x_j^w_kj for raw rows (N, d_in) -> (N, K); InvalidInput on bad rows."""
        x = self.model.channel(raw)
        return np.exp(np.log(x) @ self.model.exponents.T).astype(self.dtype)

    def predict(self, raw) -> np.ndarray:
        return self.b + (self.monomials(raw) * np.exp(self.c)) @ self.a

    def step(self, phi, err, mu: float = MU) -> None:
        """One normalised-LMS step from features phi (K,) and error (d_out,) = y - target."""
        q = phi * phi
        r = mu / (1.0 + q.sum() + (q * (self.a * self.a).sum(axis=1)).sum())
        g = self.a @ err
        self.a -= r * np.outer(phi, err)
        self.c -= r * g * phi
        self.b -= r * err

    def train(self, raw, targets, epochs: int = 1, mu: float = 0.5) -> np.ndarray:
        """Sample by sample at a constant mu, as the board does; per-epoch RMSE before each step."""
        mono = self.monomials(raw)
        targets = np.asarray(targets, dtype=self.dtype).reshape(len(mono), -1)
        out = []
        for _ in range(epochs):
            sse = 0.0
            for m, t in zip(mono, targets):
                phi = m * np.exp(self.c)
                err = self.b + phi @ self.a - t
                sse += float(err @ err)
                self.step(phi, err, mu)
            out.append(np.sqrt(sse / max(1, targets.size)))
        return np.array(out)

    def to_model(self) -> Model:
        m = self.model
        return Model(m.offset, m.scale, m.exponents, self.c, self.a, self.b,
                     m.inputs, m.outputs, m.quantized)


def schedule(epochs: int = EPOCHS, mu: float = MU) -> list:
    """The step mu of each pass: ``mu`` first, halved every pass."""
    return [mu * 0.5 ** e for e in range(epochs)]


def rmse(pred, target) -> float:
    """Root mean square over every row and output."""
    d = np.asarray(pred, float) - np.asarray(target, float)
    return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")


def refit_rmse(model: Model, X, Y, Xh, Yh) -> float:
    """Held-out RMSE of c, a, b refit exactly (least squares) with the model's exponents.

    What feeling could reach at best on this data; if even this is far above
    the target's spread, the exponents themselves no longer fit (remelt).
    """
    f = Feeler(model)
    A = np.hstack([f.monomials(X), np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    Ah = np.hstack([f.monomials(Xh), np.ones((len(Xh), 1))])
    return rmse(Ah @ coef, Yh)


# -- the protocol messages, over a connected neurondyn.link.Board --------------
def _request(board, typ, payload=b"", **kw) -> bytes:
    """board.request, with a clear line when the firmware has no feeling module."""
    from .link import BoardError
    try:
        return board.request(typ, payload, **kw)
    except BoardError as exc:
        if exc.code == P.E_UNKNOWN:     # firmware older than PULL/TRAIN
            raise DeviceError("the firmware on %s cannot retrain or pull (it predates "
                              "feeling: flash the current one with `ndyn flash`)"
                              % board.port) from None
        raise


def samples_per_message(board) -> int:
    info = board.info
    per = (info["max_msg"] - TRAIN_HEADER) // (4 * (info["d_in"] + info["d_out"]))
    if per < 1:
        raise DeviceError("the board's message buffer cannot hold one labelled %d -> %d sample"
                          % (info["d_in"], info["d_out"]))
    return per


def train(board, X, Y, mu: float = 0.0, evaluate: bool = False, progress=None) -> dict:
    """Stream labelled rows to the board: TRAIN steps (or, with ``evaluate``, no update).

    Returns {"sse": per-output sum of squared errors of the board's predictions
    made before each step, "used": rows used, "bad": rows the board refused}.
    """
    info = board.info
    if not info or not info["model_loaded"]:
        raise DeviceError("the board at %s has no model: upload one with `ndyn flash`"
                          % board.port)
    X = np.asarray(X, dtype=np.float64).reshape(-1, info["d_in"])
    Y = np.asarray(Y, dtype=np.float64).reshape(len(X), info["d_out"])
    per = samples_per_message(board)
    head = struct.pack("<Bf", FLAG_EVAL if evaluate else 0, float(mu))
    sse = np.zeros(info["d_out"])
    used = bad = 0
    timeout = max(board.timeout, 0.5 + 0.15 * per)
    for start in range(0, len(X), per):
        rows = np.hstack([X[start:start + per], Y[start:start + per]])
        body = _request(board, P.TRAIN, head + rows.astype("<f4").tobytes(), timeout=timeout,
                        what="EVAL" if evaluate else "TRAIN")
        if len(body) != 4 + 4 * info["d_out"]:
            raise DeviceError("board at %s sent a TRAIN reply of %d bytes" % (board.port, len(body)))
        u, b = struct.unpack_from("<HH", body, 0)
        used += u
        bad += b
        sse += np.frombuffer(body[4:], dtype="<f4")
        if progress is not None:
            progress(len(rows))
    return {"sse": sse, "used": used, "bad": bad}


def evaluate(board, X, Y) -> float:
    """The board's own RMSE on labelled rows (no update); NaN if it refused them all."""
    out = train(board, X, Y, evaluate=True)
    return float(np.sqrt(out["sse"].sum() / (out["used"] * board.info["d_out"]))) \
        if out["used"] else float("nan")


def commit(board) -> int:
    """Persist the board's trained parameters; returns the new model hash.

    There is no separate commit message: the trained model is PULLed
    (CRC-checked here) and written back through the model upload, which
    saves it atomically on every board (two slots with a generation byte;
    the micro:bit V1 restarts into its upload mode for it, which is why the
    bytes travel through the host: the V1 has no room for a second writer
    beside its serving loop, and a restart clears its RAM). A power cut at
    any instant leaves the old model or the new one; if the line fails
    halfway, the host still holds the bytes and the board the old model.
    """
    blob = pull(board)
    info = board.upload(blob)
    crc = ndm.model_hash(blob)
    if info.get("model_hash") != crc:
        raise DeviceError("board at %s serves model %s after the commit, expected %08x"
                          % (board.port, info.get("model_hash"), crc))
    return crc


def pull(board) -> bytes:
    """The .ndm bytes the board serves now, CRC-verified (DeviceError if torn)."""
    step = board.info["max_reply"] - 8
    body = _request(board, P.PULL, struct.pack("<IH", 0, step), what="PULL")
    total, crc = struct.unpack_from("<II", body, 0)
    data = bytearray(body[8:])
    while len(data) < total:
        body = _request(board, P.PULL, struct.pack("<IH", len(data), step), what="PULL")
        if len(body) <= 8 or struct.unpack_from("<II", body, 0) != (total, crc):
            raise DeviceError("board at %s changed its model during PULL" % board.port)
        data += body[8:]
    data = bytes(data[:total])
    if len(data) < 14 or zlib.crc32(data[:-4]) != crc or data[-4:] != struct.pack("<I", crc):
        raise DeviceError("board at %s sent a model that fails its CRC-32 check" % board.port)
    try:
        ndm.loads(data)
    except ndm.NdmError as exc:
        raise DeviceError("board at %s sent an unreadable model: %s" % (board.port, exc)) from None
    return data


# -- ndyn retrain ----------------------------------------------------------------
def check_columns(model: Model, has_names: bool, inputs, outputs) -> None:
    """UserError (exit 2) unless --inputs/--outputs match the board's model."""
    if len(inputs) != model.d_in or len(outputs) != model.d_out:
        raise UserError("the board's model maps %d inputs to %d outputs, but --inputs names %d "
                        "and --outputs %d columns" % (model.d_in, model.d_out,
                                                      len(inputs), len(outputs)))
    if has_names and (list(inputs) != model.inputs or list(outputs) != model.outputs):
        raise UserError("the board's model takes inputs %s -> outputs %s, not %s -> %s"
                        % (",".join(model.inputs), ",".join(model.outputs),
                           ",".join(inputs), ",".join(outputs)))


def split(n: int, holdout: float):
    """Deterministic (seed 0) split of n rows: (train indices, held-out indices)."""
    if n < 2:
        raise UserError("retraining needs at least 2 rows (some to train on, some to evaluate)")
    k = min(n - 1, max(1, int(round(holdout * n))))
    order = np.random.default_rng(0).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def retrain(board, X, Y, inputs, outputs, epochs: int = EPOCHS, holdout: float = HOLDOUT,
            mu: float = 0.0, progress=None, do_commit: bool = True) -> dict:
    """The ndyn retrain flow on an open Board; returns the figures it printed from."""
    blob = pull(board)
    model = ndm.loads(blob)
    check_columns(model, bool(blob[5] & ndm.FLAG_NAMES), inputs, outputs)
    good = model.valid_rows(X) & np.all(np.isfinite(Y), axis=1)
    X, Y = X[good], Y[good]
    tr, ho = split(len(X), holdout)
    before = evaluate(board, X[ho], Y[ho])
    if progress is not None:
        progress(None, epochs * len(tr))
    for step in schedule(epochs, mu or MU):
        train(board, X[tr], Y[tr], mu=step,
              progress=None if progress is None else (lambda n: progress(n, None)))
    after = evaluate(board, X[ho], Y[ho])
    new_hash = commit(board) if do_commit else None
    reach = refit_rmse(model, X[tr], Y[tr], X[ho], Y[ho])
    spread = float(np.sqrt(np.mean((Y[tr] - Y[tr].mean(axis=0)) ** 2)))
    structural = reach > STRUCTURAL * spread
    return {"rows_dropped": int((~good).sum()), "train_rows": int(len(tr)),
            "holdout_rows": int(len(ho)), "epochs": epochs, "rmse_before": before,
            "rmse_after": after, "refit_rmse": reach, "target_rms_spread": spread,
            "structural_change": bool(structural),
            "not_converged": bool(not structural and after > 2.0 * reach + 1e-6 * spread),
            "model_hash": new_hash, "old_hash": ndm.model_hash(blob)}
