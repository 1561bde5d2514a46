"""``ndyn sweep``: anneal many datasets x seeds x schedules on a Dask cluster.

Why Dask: a fleet of anneals (a model per robot, per sensor batch, per day of
logs) outgrows one machine, and Dask's distributed scheduler already knows how
to place tasks, move data, and reschedule the work of a worker that dies.

How a sweep runs:

* every dataset is read and checked here, on the client, then scattered to
  the cluster once; its seeds' tasks all take that one copy (data travels
  once, and a remote worker needs no access to the user's files);
* one task per (dataset, seed, schedule) runs ``sweep_task.anneal_task``,
  whose result depends only on its arguments -- the ``.ndm`` bytes equal
  those of ``ndyn anneal`` with the same seed and schedule;
* when a dataset's tasks are all back, the lowest-energy result (ties: the
  first schedule given, then the first seed) is written as ``OUT/NAME.ndm`` and
  ``OUT/NAME.report.json`` (atomically, model first, report last);
* a worker that dies has its tasks rescheduled by Dask; should the scattered
  data itself be lost with it, the dataset is scattered again and its tasks
  resubmitted (up to ``MAX_ATTEMPTS``);
* a dataset that cannot be read or annealed becomes a summary row with its
  error; the others carry on (``ndyn sweep`` then exits 2 after writing
  everything);
* a dataset whose report exists, was made with the same settings from the
  same file bytes, and whose model file is intact, is skipped: re-running an
  interrupted sweep resumes it.  Ctrl-C leaves only complete files.

The summary (``OUT/summary.csv`` and the printed table) has one row per
dataset: dataset, status, K*, energy, test error (see ``sweep_task`` for the
held-out rows), agreement (runs whose atom set equals the kept model's, out
of all runs), best seed, seconds (compute time of all its tasks) and error.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import glob
import hashlib
import io
import json
import math
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field

from . import ndm
from .errors import UserError
from .fsutil import atomic_write_bytes, atomic_write_text
from .sweep_task import anneal_task

MAX_ATTEMPTS = 3          # submissions of one task when the cluster loses it
POLL_S = 0.05             # how often finished tasks are collected
SCATTER_TIMEOUT_S = 10    # plus 1 s per MB of data
# What a lost task raises: KilledWorker, lost data, or a cancellation (which is a
# BaseException since Python 3.8, so "except Exception" alone would let it through).
LOST = (Exception, asyncio.CancelledError, concurrent.futures.CancelledError)
SUMMARY_NAME = "summary.csv"
SUMMARY_COLUMNS = ["dataset", "status", "k_star", "energy", "test_error", "agreement",
                   "best_seed", "seconds", "error"]
REPORT_SUFFIX = ".report.json"


# -- inputs --------------------------------------------------------------------

@dataclass(frozen=True)
class Dataset:
    name: str     # file stem: OUT/NAME.ndm
    path: str


def find_datasets(specs) -> list:
    """CSV files named by directories (every ``*.csv`` in them), globs or paths, sorted by name."""
    if isinstance(specs, str):
        specs = [specs]
    paths = []
    for spec in specs:
        if os.path.isdir(spec):
            found = glob.glob(os.path.join(glob.escape(spec), "*.csv"))
            if not found:
                raise UserError("%s: no .csv files in this folder" % spec)
        elif glob.has_magic(spec):
            found = [p for p in glob.glob(spec) if os.path.isfile(p)]
            if not found:
                raise UserError("%s: no file matches this pattern" % spec)
        elif os.path.isfile(spec):
            found = [spec]
        else:
            raise UserError("%s: no such file or folder" % spec)
        paths.extend(found)
    by_name = {}
    for p in sorted(set(os.path.abspath(p) for p in paths)):
        name = os.path.splitext(os.path.basename(p))[0]
        if name in by_name:
            raise UserError("two datasets would both be written as %s.ndm: %s and %s"
                            % (name, by_name[name], p))
        by_name[name] = p
    return [Dataset(n, by_name[n]) for n in sorted(by_name)]


def parse_seeds(text: str) -> list:
    """``0-4`` -> [0..4]; ``1,5,9`` and ``0-2,7`` work too; order kept, duplicates dropped."""
    seeds = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                values = range(lo, hi + 1)
            else:
                values = [int(part)]
        except ValueError:
            raise UserError("--seeds: '%s' is not a seed or a range like 0-4" % part) from None
        for v in values:
            if v < 0:
                raise UserError("--seeds: seeds are non-negative integers (got %d)" % v)
            if v not in seeds:
                seeds.append(v)
    if not seeds:
        raise UserError("--seeds: no seed given")
    return seeds


@dataclass
class Settings:
    """Everything besides the data that decides a sweep's results (kept in each report)."""
    inputs: list
    outputs: list
    seeds: list
    schedules: list = field(default_factory=lambda: [None])   # None: the annealer's default
    pool: int = None
    holdout: float = 0.2

    def runs(self):
        """(seed, schedule) pairs in the order ties are broken."""
        return [(seed, sched) for sched in self.schedules for seed in self.seeds]

    def as_json(self):
        return json.loads(json.dumps(asdict(self)))


def check_settings(settings: Settings) -> None:
    """Reject bad settings before any cluster starts (schedules are parsed here too)."""
    if not settings.inputs or not settings.outputs:
        raise UserError("--inputs and --outputs each need at least one column name")
    if not (0.0 <= settings.holdout < 1.0):
        raise UserError("--holdout must be in [0, 1) (got %g)" % settings.holdout)
    if settings.pool is not None and not 1 <= settings.pool <= 255:
        raise UserError("--pool must be between 1 and 255, got %d" % settings.pool)
    if any(s is not None for s in settings.schedules):
        from .anneal import parse_schedule
        for s in settings.schedules:
            if s is None:
                continue
            try:
                parse_schedule(s)
            except UserError:
                raise
            except (ValueError, TypeError) as exc:
                raise UserError("--schedule '%s': %s" % (s, exc)) from None


# -- outputs -------------------------------------------------------------------

@dataclass
class Row:
    dataset: str
    status: str = ""            # annealed | resumed | failed
    k_star: int = None
    energy: float = None
    test_error: float = None
    agreement: str = ""
    best_seed: int = None
    seconds: float = 0.0
    error: str = ""


def model_path(out_dir, name):
    return os.path.join(out_dir, name + ".ndm")


def report_path(out_dir, name):
    return os.path.join(out_dir, name + REPORT_SUFFIX)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise UserError("%s: cannot read (%s)" % (path, exc.strerror or exc)) from None
    return h.hexdigest()


def finished_row(out_dir, dataset, settings, data_sha256):
    """The summary row of an earlier run of this very sweep on this dataset, or None."""
    try:
        with open(report_path(out_dir, dataset.name), "r", encoding="utf-8") as fh:
            sweep = json.load(fh)["sweep"]
        if sweep["settings"] != settings.as_json() or sweep["data_sha256"] != data_sha256:
            return None
        blob = open(model_path(out_dir, dataset.name), "rb").read()
        ndm.loads(blob)
        if ndm.model_hash(blob) != sweep["model_crc32"]:
            return None
        row = Row(**sweep["row"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    row.status = "resumed"
    return row


def choose_best(results):
    """Lowest energy among successful runs; ``results`` is in tie-break order."""
    ok = [r for r in results if "error" not in r]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["energy"] if math.isfinite(r["energy"]) else math.inf))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):          # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def finish_dataset(out_dir, dataset, settings, data_sha256, results) -> Row:
    """Keep the best run of one dataset: write its model and report, return its summary row."""
    row = Row(dataset.name, seconds=sum(r.get("seconds", 0.0) for r in results))
    best = choose_best(results)
    if best is None:
        row.status = "failed"
        row.error = results[0].get("error", "no result") if results else "no result"
        return row
    same = sum(1 for r in results if "error" not in r and r["atoms"] == best["atoms"])
    row.status = "annealed"
    row.k_star = best["k_star"]
    row.energy = best["energy"]
    row.test_error = best["test_error"]
    row.agreement = "%d/%d" % (same, len(results))
    row.best_seed = best["seed"]
    failed = [r for r in results if "error" in r]
    if failed:
        row.error = "%d run(s) failed, first: %s" % (len(failed), failed[0]["error"])
    model = ndm.loads(best["ndm"])          # validates the worker's bytes (CRC, ranges)
    report = {
        "dataset": dataset.name,
        "source": dataset.path,
        "sweep": {"settings": settings.as_json(), "data_sha256": data_sha256,
                  "model_crc32": ndm.model_hash(best["ndm"]), "row": asdict(row)},
        "best": {"seed": best["seed"], "schedule": best["schedule"]},
        "runs": [{k: r.get(k) for k in ("seed", "schedule", "k_star", "energy", "loss",
                                         "saturated", "test_error", "seconds", "cpu_seconds",
                                         "attempts",
                                         "error")}
                 for r in results],
        "model": model.to_dict(),
        "anneal": best.get("report"),
    }
    atomic_write_bytes(model_path(out_dir, dataset.name), best["ndm"])
    atomic_write_text(report_path(out_dir, dataset.name),
                      json.dumps(_jsonable(report), indent=1, allow_nan=False) + "\n")
    return row


def _cell(value, digits=6):
    if value is None:
        return ""
    if isinstance(value, float):
        return "%.*g" % (digits, value)
    return str(value)


def summary_csv(rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in rows:
        d = asdict(row)
        writer.writerow([repr(d[c]) if isinstance(d[c], float) else _cell(d[c])
                         for c in SUMMARY_COLUMNS])
    return buf.getvalue()


def format_table(rows) -> str:
    """The printed summary: one line per dataset, errors last and unpadded."""
    heads = ["dataset", "status", "K*", "energy", "test err", "agree", "seed", "seconds"]
    body = [[r.dataset, r.status, _cell(r.k_star), _cell(r.energy, 5), _cell(r.test_error, 3),
             r.agreement, _cell(r.best_seed), "%.1f" % r.seconds] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)) + "  error"]
    for r, b in zip(rows, body):
        lines.append(("  ".join(c.ljust(w) for c, w in zip(b, widths)) + "  " + r.error).rstrip())
    return "\n".join(lines)


# -- the sweep -----------------------------------------------------------------

def load_dataset(dataset, settings):
    """(X, Y, inputs, outputs) of one dataset, or a UserError with the file's problem.

    The same reading and checks as ``ndyn anneal``, so a file it refuses is refused
    here too, with the same message.
    """
    from .data import MIN_TRAIN_ROWS, select
    X, Y = select(dataset.path, settings.inputs, settings.outputs, min_rows=MIN_TRAIN_ROWS)
    try:
        from .commands.anneal import _check_float32_range
    except ImportError:      # a `ndyn anneal` without that check
        pass
    else:
        _check_float32_range(dataset.path, X, settings.inputs)
        _check_float32_range(dataset.path, Y, settings.outputs)
    return (X, Y, list(settings.inputs), list(settings.outputs))


def _is_lost(future) -> bool:
    return future.status in ("lost", "error", "cancelled")


@dataclass
class Plan:
    """What is left to do: rows already known (done earlier, unreadable) and datasets to run."""
    rows: dict
    pending: dict      # dataset name -> {"dataset", "sha", "data"}


def plan_sweep(datasets, settings: Settings, out_dir) -> Plan:
    """Read and check every dataset here, before any cluster is needed (nothing is written)."""
    check_settings(settings)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError("%s: exists and is not a folder" % out_dir)
    rows, pending = {}, {}
    for ds in datasets:
        try:
            digest = file_sha256(ds.path)
            done = finished_row(out_dir, ds, settings, digest)
            if done is not None:
                rows[ds.name] = done
                continue
            data = load_dataset(ds, settings)
        except UserError as exc:
            rows[ds.name] = Row(ds.name, status="failed", error=str(exc))
            continue
        pending[ds.name] = {"dataset": ds, "sha": digest, "data": data}
    return Plan(rows, pending)


def run_sweep(client, datasets, settings: Settings, out_dir, progress=True, log=sys.stderr,
              plan: Plan = None):
    """Anneal every dataset on ``client``'s cluster; write the outputs; return the summary rows.

    ``client`` may be None when ``plan`` (from ``plan_sweep``) has nothing left to run.
    """
    if plan is None:
        plan = plan_sweep(datasets, settings, out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise UserError("%s: cannot create the output folder (%s)"
                        % (out_dir, exc.strerror or exc)) from None
    rows = dict(plan.rows)
    runs = settings.runs()
    pending = {name: dict(state, results=[None] * len(runs), attempts=[0] * len(runs))
               for name, state in plan.pending.items()}
    if pending and client is None:
        raise ValueError("run_sweep needs a client: %d dataset(s) to anneal" % len(pending))
    token = uuid.uuid4().hex[:8]
    n_tasks = len(pending) * len(runs)
    resumed = sum(1 for r in rows.values() if r.status == "resumed")
    print("sweep: %d dataset(s), %d done earlier, %d unreadable; %d task(s)%s"
          % (len(datasets), resumed, len(rows) - resumed, n_tasks,
             " on %d worker(s)" % len(client.scheduler_info().get("workers", {}))
             if client is not None else ""), file=log)
    if pending:
        _execute(client, pending, rows, runs, token, settings, out_dir, progress, log)
    ordered = [rows[ds.name] for ds in datasets]
    atomic_write_text(os.path.join(out_dir, SUMMARY_NAME), summary_csv(ordered))
    return ordered


def _execute(client, pending, rows, runs, token, settings, out_dir, progress, log):
    """Scatter, submit, collect (resubmitting what the cluster loses), write per dataset."""
    from tqdm import tqdm

    n_tasks = len(pending) * len(runs)

    where = {}        # in-flight future -> (dataset name, run index), in submission order

    def scatter(state):
        """Send one dataset to the cluster; again if the worker it went to dies meanwhile.

        The timeout keeps a send to a worker that just died from waiting out Dask's
        30 s connect timeout (seen in the killed-worker test); it grows with the data.
        """
        nbytes = state["data"][0].nbytes + state["data"][1].nbytes
        timeout = SCATTER_TIMEOUT_S + nbytes / 1e6
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                # a list of one item: scatter() would split a bare tuple into one future per field
                state["future"] = client.scatter([state["data"]], hash=False, timeout=timeout)[0]
                return
            except OSError:          # CommClosedError or TimeoutError: the target worker died
                if attempt == MAX_ATTEMPTS:
                    raise
                time.sleep(0.5 * attempt)

    def submit(name, i):
        state = pending[name]
        seed, sched = runs[i]
        state["attempts"][i] += 1
        key = "ndyn-sweep-%s-%s-seed%d-run%d-try%d" % (token, name, seed, i, state["attempts"][i])
        fut = client.submit(anneal_task, state["future"], seed, sched, settings.pool,
                            settings.holdout, key=key, pure=False)
        where[fut] = (name, i)

    def collect(fut):
        name, i = where.pop(fut)
        state = pending[name]
        try:
            result = fut.result()
        except LOST as exc:          # the cluster lost the task (or its data)
            if state["attempts"][i] < MAX_ATTEMPTS:
                if _is_lost(state["future"]):
                    scatter(state)
                submit(name, i)
                return
            result = {"seed": runs[i][0], "schedule": runs[i][1], "seconds": 0.0,
                      "error": "the cluster lost this task %d times: %s: %s"
                               % (MAX_ATTEMPTS, type(exc).__name__, " ".join(str(exc).split()))}
        finally:
            fut.release()
        result["attempts"] = state["attempts"][i]
        state["results"][i] = result
        bar.update(1)
        if all(r is not None for r in state["results"]):
            rows[name] = finish_dataset(out_dir, state["dataset"], settings, state["sha"],
                                        state["results"])
            state["future"].release()
            del pending[name]

    bar = tqdm(total=n_tasks, unit="task", desc="sweep", disable=not progress, file=log,
               dynamic_ncols=True)
    try:
        for name in list(pending):
            scatter(pending[name])
            for i in range(len(runs)):
                submit(name, i)
        while where:
            # Poll instead of blocking in as_completed(): Ctrl-C raised while this thread
            # waits inside a lock shared with Dask's IO thread can leave that lock held,
            # and the cleanup (cancel, close) then waits for the IO thread forever.
            # done() only reads a status, and sleep() holds no lock.
            finished = [f for f in where if f.done()]
            if not finished:
                time.sleep(POLL_S)
                continue
            for fut in finished:
                collect(fut)
    finally:
        bar.close()
        if where:     # interrupted: take our tasks off a (possibly shared) cluster
            client.cancel(list(where))
