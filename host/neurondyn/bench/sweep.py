"""``ndyn bench sweep``: what Dask buys (and costs) for fleets of anneals (issue 7).

The workload: 40 datasets of the recovery grid (x in [1, 5], d = 10,
K in {1, 2, 4, 6}, ten problems per cell with the grid's public seeds, 1 %
noise, 1000 rows) x 3 seeds = 120 tasks, schedule ``geometric:30:0.02:1000``,
pool 6, the sweep's default 20 % hold-out (so each task is two anneals).  Each
dataset is a CSV file, so the measured path is the one users take.  One width
only, because one sweep takes one set of column names: two sweeps in a row
would each leave a worker idle at their tail and blur the speedup.

Measured, each on a fresh output folder:

* plain loop: every task run in this process, one after the other, with BLAS
  limited to one thread -- the time with no scheduler at all;
* local 1 worker and local 2 workers: ``run_sweep`` on a ``LocalCluster``
  (started before the clock starts); speedup = t(1) / t(2);
* loopback cluster: ``dask scheduler --host 127.0.0.1`` and two
  ``dask worker tcp://127.0.0.1:PORT --host 127.0.0.1 --nworkers 1 --nthreads 1``
  started as separate processes -- the multi-machine path, on one machine;
* scheduler overhead per task = (t(local, 1 worker) - t(plain loop)) / tasks,
  against the median task time of the plain loop.

CPU per task (measured inside the task, on the worker) does not depend on
how busy the machine is, unlike wall time: equal CPU in the loop and on the
workers shows the workers run the task as fast as a plain process.

Every run must give byte-identical ``.ndm`` files (to each other and to the
plain loop's best-energy choice); the table says so per run.  Targets (issue
7): speedup >= 1.7 with 2 workers, overhead <= 5 % of the median task.
Timings are only honest on an otherwise idle machine with 2 free cores.
``--quick``: 6 datasets x 3 seeds, 300 rows, 300 steps -- checks every path in a minute
or two, its timings say little.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import numpy as np

from . import BenchContext, SuiteResult
from .problems import make_problem, problem_seed
from .table import md_table, secs
from ..sweep_cluster import fast_worker_env

WIDTH = 10
FULL = {"ks": (1, 2, 4, 6), "per_cell": 10, "rows": 1000, "schedule": "geometric:30:0.02:1000"}
QUICK = {"ks": (2, 4, 6), "per_cell": 2, "rows": 300, "schedule": "geometric:30:0.02:300"}
SEEDS = [0, 1, 2]
POOL = 6
NOISE = 0.01
X_RANGE_INDEX = 0        # x in [1, 5]: the grid's first range
TARGET_SPEEDUP = 1.7
TARGET_OVERHEAD = 0.05
START_TIMEOUT_S = 60


# -- the workload -------------------------------------------------------------

def write_datasets(folder, cfg) -> list:
    """The recovery-grid problems as CSV files (a0..aD, y); returns their names."""
    from ..data import format_csv
    from .recovery import structure_cell
    names = []
    for d in (WIDTH,):
        for K in cfg["ks"]:
            for i in range(cfg["per_cell"]):
                seed = problem_seed(structure_cell(X_RANGE_INDEX, d, K), i)
                p = make_problem(d, K, NOISE, seed, n=cfg["rows"], n_test=10)
                name = "d%d-K%d-s%d" % (d, K, seed)
                header = ["x%d" % (j + 1) for j in range(d)] + ["y"]
                with open(os.path.join(folder, name + ".csv"), "w") as fh:
                    fh.write(format_csv(header, np.column_stack([p.X, p.Y])))
                names.append(name)
    return names


def sweep_inputs(folder, cfg):
    """(settings, datasets) of the one sweep over ``folder``."""
    from ..sweep import Settings, find_datasets
    settings = Settings(inputs=["x%d" % (j + 1) for j in range(WIDTH)], outputs=["y"],
                        seeds=SEEDS, schedules=[cfg["schedule"]], pool=POOL)
    return settings, find_datasets(folder)


def read_models(out_dir) -> dict:
    return {f[:-4]: open(os.path.join(out_dir, f), "rb").read()
            for f in sorted(os.listdir(out_dir)) if f.endswith(".ndm")}


def task_cpu(out_dir) -> list:
    """CPU seconds of every task of a sweep, from its reports (measured on the workers)."""
    import json
    cpu = []
    for f in sorted(os.listdir(out_dir)):
        if f.endswith(".report.json"):
            with open(os.path.join(out_dir, f)) as fh:
                cpu += [r["cpu_seconds"] for r in json.load(fh)["runs"]
                        if r.get("cpu_seconds") is not None]
    return cpu


# -- the runs -----------------------------------------------------------------

def plain_loop(folder, cfg):
    """Every task in this process, one thread.

    Returns (wall seconds, wall seconds per task, CPU seconds per task, best .ndm per dataset).
    """
    from threadpoolctl import threadpool_limits
    from ..sweep import choose_best, load_dataset
    from ..sweep_task import anneal_task
    task_seconds, task_cpu_seconds, best = [], [], {}
    started = time.perf_counter()
    settings, datasets = sweep_inputs(folder, cfg)
    with threadpool_limits(limits=1):
        for ds in datasets:
            data = load_dataset(ds, settings)
            results = []
            for seed, sched in settings.runs():
                t0 = time.perf_counter()
                results.append(anneal_task(data, seed, sched, settings.pool, settings.holdout))
                task_seconds.append(time.perf_counter() - t0)
                task_cpu_seconds.append(results[-1]["cpu_seconds"])
            pick = choose_best(results)
            if pick is not None:
                best[ds.name] = pick["ndm"]
    return time.perf_counter() - started, task_seconds, task_cpu_seconds, best


def _warm_up():
    """Import the task code on a worker, so no run pays its import time inside the clock."""
    import neurondyn.anneal  # noqa: F401
    import neurondyn.sweep_task  # noqa: F401
    try:
        import neurondyn.commands.anneal  # noqa: F401  (its post-processing runs in every task)
    except ImportError:
        pass
    return True


def timed_sweep(client, folder, cfg, out_dir):
    """Wall seconds of run_sweep over every group on an already running, warmed-up cluster."""
    from ..sweep import run_sweep
    client.run(_warm_up)
    settings, datasets = sweep_inputs(folder, cfg)
    with open(os.devnull, "w") as quiet:
        started = time.perf_counter()
        rows = run_sweep(client, datasets, settings, out_dir, progress=False, log=quiet)
        seconds = time.perf_counter() - started
    failed = [r for r in rows if r.status != "annealed"]
    return seconds, rows, failed


def local_run(folder, cfg, out_dir, workers):
    """The cluster ``ndyn sweep --workers N`` starts."""
    from distributed import Client
    from ..sweep_cluster import start_local_cluster
    with start_local_cluster(workers) as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
        return timed_sweep(client, folder, cfg, out_dir)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cli():
    script = os.path.join(os.path.dirname(sys.executable), "dask")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "dask"]


def _stop(procs):
    """End the processes this benchmark started (by pid), politely first."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _worker_settings():
    """(MALLOC_TRIM_THRESHOLD_, profiler on?) as a worker process sees them."""
    import dask
    return (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
            bool(dask.config.get("distributed.worker.profile.enabled")))


@contextmanager
def loopback_cluster(log_dir, workers=2):
    """``dask scheduler`` + ``workers`` x ``dask worker`` as separate processes on 127.0.0.1.

    Yields the scheduler address once every worker has joined; stops the
    processes (by pid) on exit.  Their logs go to ``log_dir``.
    """
    from distributed import Client
    port = _free_port()
    address = "tcp://127.0.0.1:%d" % port
    quiet = ["--dashboard-address", "127.0.0.1:0", "--no-dashboard"]
    config = os.path.join(log_dir, "dask-config")
    os.makedirs(config, exist_ok=True)
    env = fast_worker_env(config)     # what the sweep docs tell users to configure
    procs = []
    try:
        procs.append(subprocess.Popen(
            _dask_cli() + ["scheduler", "--host", "127.0.0.1", "--port", str(port)] + quiet,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(log_dir, "scheduler.log"), "w"),
            env=env))
        for i in range(workers):
            procs.append(subprocess.Popen(
                _dask_cli() + ["worker", address, "--host", "127.0.0.1", "--nworkers", "1",
                               "--nthreads", "1"] + quiet,
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(log_dir, "worker%d.log" % i), "w"), env=env))
        deadline = time.monotonic() + START_TIMEOUT_S
        client = None
        while client is None:
            try:
                client = Client(address, timeout=5, set_as_default=False)
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise RuntimeError("the loopback scheduler did not start (see %s)" % log_dir)
                time.sleep(0.5)
        with client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
            settings = client.run(_worker_settings)
        if any(v != (None, False) for v in settings.values()):
            raise RuntimeError("loopback workers did not take the sweep's Dask settings: %r"
                               % settings)
        yield address
    finally:
        _stop(procs)


def loopback_run(folder, cfg, out_dir, log_dir):
    """The sweep on a loopback cluster of separate processes (the multi-machine path)."""
    from distributed import Client
    with loopback_cluster(log_dir) as address, Client(address, set_as_default=False) as client:
        return timed_sweep(client, folder, cfg, out_dir)


# -- the suite ----------------------------------------------------------------

def run(ctx: BenchContext = None, quick=None) -> SuiteResult:
    """The suite (registry convention: ``run(ctx)``); ``run(quick=True)`` works too.

    The result's ``markdown`` is the table, ``data`` the numbers (``--json``).
    """
    ctx = ctx or BenchContext()
    if quick is not None:
        ctx = BenchContext(quick=bool(quick), jobs=ctx.jobs, checkpoint=ctx.checkpoint,
                           progress=ctx.progress, options=ctx.options)
    cfg = QUICK if ctx.quick else FULL
    work = tempfile.mkdtemp(prefix="ndyn-bench-sweep-")
    try:
        data = os.path.join(work, "data")
        os.makedirs(data)
        names = write_datasets(data, cfg)
        n_tasks = len(names) * len(SEEDS)
        say = (lambda msg: print("bench sweep: " + msg, file=sys.stderr)) if ctx.progress \
            else (lambda msg: None)

        say("plain loop over %d tasks" % n_tasks)
        t_loop, task_seconds, loop_cpu, ref = plain_loop(data, cfg)
        runs = {}
        for label, fn in (("local, 1 worker", lambda o: local_run(data, cfg, o, 1)),
                          ("local, 2 workers", lambda o: local_run(data, cfg, o, 2)),
                          ("loopback cluster, 2 worker processes",
                           lambda o: loopback_run(data, cfg, o, work))):
            say(label)
            out = os.path.join(work, "out-%d" % len(runs))
            os.makedirs(out)
            seconds, rows, failed = fn(out)
            models = read_models(out)
            runs[label] = {"seconds": seconds, "datasets": len(rows), "failed": len(failed),
                           "identical": models == ref and len(models) == len(names),
                           "median_task_cpu_seconds": _median(task_cpu(out))}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    t1 = runs["local, 1 worker"]["seconds"]
    t2 = runs["local, 2 workers"]["seconds"]
    median_task = float(np.median(task_seconds))
    overhead = (t1 - t_loop) / n_tasks
    result = {
        "quick": bool(ctx.quick), "datasets": len(names), "seeds": SEEDS, "tasks": n_tasks,
        "schedule": cfg["schedule"], "rows": cfg["rows"], "pool": POOL,
        "plain_loop_seconds": t_loop, "median_task_seconds": median_task,
        "plain_loop_median_task_cpu_seconds": _median(loop_cpu),
        "runs": runs, "speedup_2_workers": t1 / t2,
        "overhead_per_task_seconds": overhead, "overhead_fraction": overhead / median_task,
        "targets": {"speedup": TARGET_SPEEDUP, "overhead_fraction": TARGET_OVERHEAD},
    }
    return SuiteResult("sweep", render(result), result)


def _median(values):
    return float(np.median(values)) if len(values) else None


def render(r) -> str:
    title = "### sweep: %d datasets x %d seeds = %d tasks on Dask%s" % (
        r["datasets"], len(r["seeds"]), r["tasks"], " (quick)" if r["quick"] else "")
    base = r["runs"]["local, 1 worker"]["seconds"]
    rows = [["plain loop (no scheduler)", secs(r["plain_loop_seconds"]),
             "%.2f" % (base / r["plain_loop_seconds"]),
             secs(r["plain_loop_median_task_cpu_seconds"]), "-", "-"]]
    for label, run_ in r["runs"].items():
        rows.append([label, secs(run_["seconds"]), "%.2f" % (base / run_["seconds"]),
                     secs(run_["median_task_cpu_seconds"]),
                     "%d/%d" % (run_["datasets"] - run_["failed"], r["datasets"]),
                     "yes" if run_["identical"] else "NO"])
    ok_speed = r["speedup_2_workers"] >= TARGET_SPEEDUP
    ok_over = r["overhead_fraction"] <= TARGET_OVERHEAD
    lines = [
        title, "",
        "Schedule %s, %d rows, pool %d, 20 %% hold-out (two anneals per task); "
        "median task %s." % (r["schedule"], r["rows"], r["pool"], secs(r["median_task_seconds"])),
        "",
        md_table(["run", "wall time", "speed vs 1 worker", "CPU per task (median)",
                  "datasets done", "same .ndm as plain loop"], rows),
        "",
        md_table(["measure", "value", "target", "met"], [
            ["speedup, 2 vs 1 local workers", "%.2f x" % r["speedup_2_workers"],
             ">= %.1f x" % TARGET_SPEEDUP, "yes" if ok_speed else "no"],
            ["scheduler overhead per task", "%.1f ms (%.1f %% of median task)"
             % (1000 * r["overhead_per_task_seconds"], 100 * r["overhead_fraction"]),
             "<= %.0f %%" % (100 * TARGET_OVERHEAD), "yes" if ok_over else "no"],
        ]),
    ]
    if r["quick"]:
        lines += ["", "Quick run: too few tasks for the timings to mean much; "
                      "run `ndyn bench sweep` on an idle machine for the numbers."]
    return "\n".join(lines)
