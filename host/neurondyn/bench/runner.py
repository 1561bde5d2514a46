"""Run a list of independent benchmark tasks: single-threaded, resumable, optionally parallel.

Why single-threaded: the timing targets are per core (DESIGN.md §10 says
OMP_NUM_THREADS=1).  Every task runs with BLAS/OpenMP pools limited to one
thread -- through threadpoolctl (installed with scikit-learn) in the process
that runs it, and through OMP_NUM_THREADS & co. in the environment of worker
processes so their numpy starts single-threaded.  ``jobs`` > 1 runs that many
worker processes side by side: faster overall, but each task's time is then
only honest if the machine has that many idle cores.  The default is 1.

Why resumable: the full recovery run takes about an hour.  With a checkpoint
file every finished task is appended as one JSON line; a rerun with the same
checkpoint skips the tasks already there (a torn last line is ignored).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def single_thread_env() -> None:
    """Ask every BLAS/OpenMP runtime for one thread (effective for processes started after)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"


def _call(payload):
    """Run one task with every thread pool loaded so far limited to one thread."""
    func, spec = payload
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:      # the env vars (set before numpy loads) still apply
        return spec["key"], func(spec)
    with threadpool_limits(limits=1):
        return spec["key"], func(spec)


def load_checkpoint(path) -> dict:
    """key -> result from a JSON-lines checkpoint (missing file = nothing done)."""
    done = {}
    if not path or not os.path.exists(path):
        return done
    with open(path, "r", encoding="utf-8") as fh:
        for line in fh:
            try:
                item = json.loads(line)
                done[item["key"]] = item["result"]
            except (ValueError, KeyError, TypeError):
                continue      # torn line from an interrupted run
    return done


def run_tasks(func, specs, jobs=1, checkpoint=None, progress=True, label="bench") -> list:
    """Run ``func(spec)`` for every spec (each a dict with a unique "key"); results in spec order.

    ``func`` must be a module-level function (it is sent to worker processes).
    """
    done = load_checkpoint(checkpoint)
    todo = [s for s in specs if s["key"] not in done]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc=label,
                   unit="problem", file=sys.stderr, dynamic_ncols=True, leave=False)
    out_fh = None
    if checkpoint:
        folder = os.path.dirname(os.path.abspath(checkpoint))
        os.makedirs(folder, exist_ok=True)
        out_fh = open(checkpoint, "a", encoding="utf-8")

    def record(key, result):
        done[key] = result
        if out_fh is not None:
            out_fh.write(json.dumps({"key": key, "result": result}) + "\n")
            out_fh.flush()
        if bar is not None:
            bar.update(1)

    try:
        single_thread_env()      # for runtimes loaded later, and inherited by workers
        if jobs <= 1 or len(todo) <= 1:
            for spec in todo:
                record(*_call((func, spec)))
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(processes=int(jobs)) as pool:
                for key, result in pool.imap_unordered(_call, [(func, s) for s in todo]):
                    record(key, result)
    finally:
        if out_fh is not None:
            out_fh.close()
        if bar is not None:
            bar.close()
    return [done[s["key"]] for s in specs]
