"""One sweep task: anneal one dataset with one seed and one schedule.

This is the only code that runs on the Dask workers, so it is kept free of
cluster, file and progress concerns.  Its result depends only on its
arguments (data, seed, schedule, pool, holdout): the annealer guarantees the
same ``.ndm`` bytes in any process, which is what lets ``ndyn sweep`` promise
the same files as a loop of ``ndyn anneal`` runs.

Test error.  The model a task hands back is fitted on *all* rows, exactly as
``ndyn anneal`` would fit it, so its bytes match.  A test error measured on
rows that model has seen would flatter it, so the task also anneals a second
time, with the same seed and schedule, on the training rows only and scores
that model on the held-out rows.  The held-out rows are a fixed, seed-free
choice (``holdout_mask``): with fraction f, row i is held out when
floor((i+1)*f) > floor(i*f) -- for f = 0.2 that is rows 4, 9, 14, ... (every
fifth row), spread evenly over the file.  The error is the relative RMSE,
RMS(prediction - truth) / RMS(truth) over all outputs (the measure of the
benchmark tables).  ``holdout=0`` skips the second anneal (half the work,
no test error).
"""
from __future__ import annotations

import math
import time

import numpy as np

# Fewer held-out rows than this give a test error too noisy to print.
MIN_TEST_ROWS = 2


def holdout_mask(n_rows: int, fraction: float) -> np.ndarray:
    """Boolean mask of held-out rows: evenly spaced, independent of any seed."""
    i = np.arange(n_rows)
    f = float(fraction)
    return np.floor((i + 1) * f) > np.floor(i * f)


def relative_rmse(y_true, y_pred) -> float:
    """RMS(y_pred - y_true) / RMS(y_true) over every output (1.0 scale if y_true is all zero)."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    denom = math.sqrt(float(np.mean(y_true * y_true)))
    err = math.sqrt(float(np.mean((y_pred - y_true) ** 2)))
    return err / (denom if denom > 0 else 1.0)


def fit(X, Y, inputs, outputs, seed, schedule, pool):
    """Exactly the annealer call of ``ndyn anneal`` (keep the two in step)."""
    from .anneal import Annealer, parse_schedule
    sched = parse_schedule(schedule) if schedule is not None else None
    return Annealer(pool=pool, seed=seed, schedule=sched, quantize=True).fit(
        X, Y, inputs=inputs, outputs=outputs)


def holdout_error(X, Y, inputs, outputs, seed, schedule, pool, holdout):
    """Anneal on the kept rows, score on the held-out rows; None if there are too few."""
    held = holdout_mask(X.shape[0], holdout)
    if held.sum() < MIN_TEST_ROWS or (~held).sum() < MIN_TEST_ROWS:
        return None
    model = fit(X[~held], Y[~held], inputs, outputs, seed, schedule, pool).model_
    ok = model.valid_rows(X[held])  # a held-out value may fall outside the channel band
    if not np.any(ok):
        return None
    return relative_rmse(Y[held][ok], model.predict(X[held][ok]))


def anneal_task(data, seed, schedule, pool, holdout):
    """Run on a worker: ``data`` is the scattered ``(X, Y, inputs, outputs)`` of one dataset.

    Never raises for a problem of the data or the anneal: that comes back as
    ``{"error": ...}`` so the caller can tell it from a lost worker (which
    surfaces as an exception of the future and is worth retrying).
    """
    from . import ndm
    X, Y, inputs, outputs = data
    started, cpu_started = time.perf_counter(), time.process_time()
    result = {"seed": int(seed), "schedule": schedule}
    try:
        ann = fit(X, Y, inputs, outputs, seed, schedule, pool)
        model = ann.model_
        result.update(
            ndm=ndm.dumps(model),
            k_star=int(model.k_star),
            energy=float(ann.energy_),
            loss=float(ann.loss_),
            saturated=bool(ann.saturated_),
            atoms=sorted(model.atom_set()),
            report=ann.report_,
        )
        result["test_error"] = (holdout_error(X, Y, inputs, outputs, seed, schedule, pool, holdout)
                                if holdout > 0 else None)
    except Exception as exc:  # reported per dataset, never fatal to the sweep
        result["error"] = _one_line(exc)
    result["seconds"] = time.perf_counter() - started
    # CPU of the whole process: on a one-thread worker that is this task (plus a little
    # of the worker's own bookkeeping), which is what the sweep benchmark compares.
    result["cpu_seconds"] = time.process_time() - cpu_started
    return result


def _one_line(exc) -> str:
    """A user-caused error reads as its message; anything else names its type too."""
    from .errors import NdynError
    text = " ".join(str(exc).split())
    if isinstance(exc, NdynError) and text:
        return text
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__
