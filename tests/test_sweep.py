"""``ndyn sweep`` on a real (small) Dask cluster on 127.0.0.1.

What is checked, and why:
* the kept model of each dataset is byte-identical to the lowest-energy one of
  a plain loop of sequential anneals (and to ``ndyn anneal`` with that seed):
  the cluster changes where work runs, never what it computes;
* a bad file becomes a summary row with its error, the others still finish;
* a worker killed mid-sweep (SIGKILL, like a crashed machine) costs nothing
  but time: every dataset completes with the same bytes;
* Ctrl-C leaves only complete files, and a re-run skips what is done;
* each dataset is scattered once and shared by its seeds' tasks;
* a cluster of separate `dask scheduler` / `dask worker` processes on
  127.0.0.1 (the multi-machine path) gives the same files.
The cluster fixtures use worker processes, as users get them; every address is 127.0.0.1.
"""
import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from neurondyn import cli, ndm
from neurondyn.errors import UserError
from neurondyn import sweep
from neurondyn.sweep_cluster import check_scheduler
from neurondyn.sweep_task import holdout_mask, relative_rmse

SCHEDULE = "geometric:30:0.02:300"
SEEDS = [0, 1]
# the scheduler's /health server on a free loopback port, not 8787 (tests run side by side)
NO_HTTP_8787 = {"scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}}
NDYN = os.path.join(os.path.dirname(sys.executable), "ndyn")

# name -> (law over inputs a, b, c), 80 rows each: small but real anneals
LAWS = {
    "ohm": lambda a, b, c: 2.0 * a * b,
    "coulomb": lambda a, b, c: 1.5 * a * b / (c * c),
    "drag": lambda a, b, c: 0.5 * a * b * b + 3.0 * c,
}


def write_csv(path, rows, header):
    with open(path, "w") as fh:
        fh.write(",".join(header) + "\n")
        for r in rows:
            fh.write(",".join(repr(float(v)) for v in r) + "\n")


def make_data(folder, copies=1, n=80):
    """One CSV per law (``copies`` > 1: also NAME2.csv, NAME3.csv, ... with other rows)."""
    os.makedirs(folder, exist_ok=True)
    for k, (law, copy) in enumerate((law, c) for c in range(copies) for law in LAWS):
        name = law if copy == 0 else "%s%d" % (law, copy + 1)
        rng = np.random.default_rng(100 + k)
        X = rng.uniform(1.0, 4.0, size=(n, 3))
        y = LAWS[law](X[:, 0], X[:, 1], X[:, 2])
        write_csv(os.path.join(folder, name + ".csv"), np.column_stack([X, y]), ["a", "b", "c", "y"])
    return folder


def run_cli(*argv):
    return cli.main([str(a) for a in argv])


def sweep_args(data, out, *extra):
    return ["sweep", data, "--inputs", "a,b,c", "--outputs", "y", "-o", out,
            "--seeds", "0-1", "--schedule", SCHEDULE, "--no-progress", *extra]


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster
    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                     dashboard_address=None, silence_logs=logging.ERROR, **NO_HTTP_8787)
    yield c
    c.close()


@pytest.fixture(scope="module")
def good_data(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def reference(good_data, tmp_path_factory):
    """Per dataset: what a loop of `ndyn anneal` runs gives, keeping the lowest energy.

    The bytes come from the real `ndyn anneal` command (in this process); the
    energies from the Annealer itself (ties: the first seed) -- no sweep code.
    """
    from neurondyn.anneal import Annealer
    from neurondyn.data import select
    folder = tmp_path_factory.mktemp("reference")
    ref = {}
    for name in LAWS:
        csv_path = os.path.join(good_data, name + ".csv")
        X, Y = select(csv_path, ["a", "b", "c"], ["y"])
        fits = [Annealer(seed=seed, schedule=SCHEDULE).fit(X, Y, inputs=["a", "b", "c"],
                                                             outputs=["y"]) for seed in SEEDS]
        best = int(np.argmin([f.energy_ for f in fits]))
        target = folder / ("%s-%d.ndm" % (name, SEEDS[best]))
        assert run_cli("anneal", csv_path, "--inputs", "a,b,c", "--outputs", "y", "-o", target,
                       "--seed", SEEDS[best], "--schedule", SCHEDULE) == 0
        ref[name] = {"bytes": target.read_bytes(), "seed": SEEDS[best],
                     "atom_sets": [f.model_.atom_set() for f in fits]}
    return ref


@pytest.fixture(scope="module")
def swept(cluster, good_data, tmp_path_factory):
    """One sweep over the good datasets plus a bad file, on the shared cluster."""
    data = str(tmp_path_factory.mktemp("mixed"))
    make_data(data)
    with open(os.path.join(data, "broken.csv"), "w") as fh:
        fh.write("a,b,c,y\n1,2,3,oops\n")
    out = str(tmp_path_factory.mktemp("out"))
    code = run_cli(*sweep_args(data, out, "--scheduler", cluster.scheduler_address))
    return code, out, data


# -- a real sweep ----------------------------------------------------------------

def test_sweep_equals_sequential_anneals(swept, reference):
    code, out, _ = swept
    for name, ref in reference.items():
        with open(os.path.join(out, name + ".ndm"), "rb") as fh:
            assert fh.read() == ref["bytes"], name


def test_summary_and_reports(swept, reference, capsys):
    code, out, _ = swept
    assert code == 2                      # one dataset failed: reported, exit 2 at the end
    with open(os.path.join(out, "summary.csv")) as fh:
        lines = fh.read().splitlines()
    assert lines[0] == ",".join(sweep.SUMMARY_COLUMNS)
    rows = {l.split(",")[0]: l for l in lines[1:]}
    assert sorted(rows) == sorted(list(LAWS) + ["broken"])
    assert "failed" in rows["broken"] and "not a number" in rows["broken"]
    assert not os.path.exists(os.path.join(out, "broken.ndm"))
    for name, ref in reference.items():
        report = json.load(open(os.path.join(out, name + ".report.json")))
        row = report["sweep"]["row"]
        model = ndm.loads(ref["bytes"])
        assert row["status"] == "annealed" and row["k_star"] == model.k_star
        assert row["best_seed"] == ref["seed"]
        same = sum(1 for s in ref["atom_sets"] if s == model.atom_set())
        assert row["agreement"] == "%d/%d" % (same, len(SEEDS))
        assert [r["seed"] for r in report["runs"]] == SEEDS
        assert row["test_error"] is not None and row["test_error"] >= 0
        assert report["model"]["k_star"] == model.k_star


def test_bytes_equal_ndyn_anneal_command(swept, reference, good_data, tmp_path):
    """The contract users see: a loop of `ndyn anneal` gives the same file."""
    code, out, _ = swept
    name = "coulomb"
    target = tmp_path / "single.ndm"
    proc = subprocess.run([NDYN, "anneal", os.path.join(good_data, name + ".csv"),
                           "--inputs", "a,b,c", "--outputs", "y", "-o", str(target),
                           "--seed", str(reference[name]["seed"]), "--schedule", SCHEDULE],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == open(os.path.join(out, name + ".ndm"), "rb").read()


def test_killed_worker_tasks_are_rescheduled(good_data, reference, tmp_path):
    """SIGKILL a worker while it runs a task: the sweep still ends with every dataset, same bytes."""
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.CRITICAL,
                      **NO_HTTP_8787) as cl, \
            Client(cl) as client:
        pids = client.run(os.getpid)
        out = str(tmp_path / "out")
        proc = subprocess.Popen([NDYN, *sweep_args(good_data, out, "--scheduler",
                                                   cl.scheduler_address)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            busy = [w for w, keys in client.processing().items()
                    if any("ndyn-sweep" in str(k) for k in keys)]
            if busy:
                victim = pids[busy[0]]
                os.kill(victim, signal.SIGKILL)
            else:
                time.sleep(0.01)
        stdout, stderr = proc.communicate(timeout=180)
        assert victim is not None, "no task was seen running: nothing was killed"
        summary = os.path.join(out, "summary.csv")
        assert proc.returncode == 0, stderr + (open(summary).read() if os.path.exists(summary)
                                               else "")
        assert victim not in client.run(os.getpid).values()
    for name, ref in reference.items():
        assert open(os.path.join(out, name + ".ndm"), "rb").read() == ref["bytes"], name
        report = json.load(open(os.path.join(out, name + ".report.json")))
        assert all(r["error"] is None for r in report["runs"])


def test_interrupt_leaves_complete_files_and_rerun_resumes(tmp_path, reference):
    """Ctrl-C (SIGINT to the process group) mid-sweep; then the same command finishes the rest."""
    data = make_data(str(tmp_path / "data"), copies=3)    # 9 datasets: time to interrupt
    names = sorted(f[:-4] for f in os.listdir(data))
    out = str(tmp_path / "out")
    argv = [NDYN, *sweep_args(data, out, "--workers", "1")]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    first = os.path.join(out, "coulomb.report.json")   # datasets run in name order
    deadline = time.monotonic() + 120
    while not os.path.exists(first) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    if proc.poll() is not None:
        pytest.fail("the sweep ended before it could be interrupted: %r" % (proc.communicate(),))
    os.killpg(proc.pid, signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:          # a hang on Ctrl-C: fail, and leave no orphans
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("ndyn sweep did not stop within 60 s of Ctrl-C: %r" % (proc.communicate(),))
    left = sorted(os.listdir(out))
    assert proc.returncode == 130, (stderr, left)
    assert "Traceback" not in stderr, stderr
    assert not [f for f in left if f.endswith(".tmp")]
    done = [f[:-4] for f in left if f.endswith(".ndm")]
    assert "coulomb" in done and len(done) < len(names), left
    for name in done:
        ndm.read(os.path.join(out, name + ".ndm"))           # whole, CRC valid
    stamps = {n: os.stat(os.path.join(out, n + ".ndm")).st_mtime_ns for n in done}

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    status = {l.split(",")[0]: l.split(",")[1]
              for l in open(os.path.join(out, "summary.csv")).read().splitlines()[1:]}
    assert sorted(status) == names
    for name in names:
        assert status[name] == ("resumed" if name in done else "annealed"), status
    for name in LAWS:     # the first copies are the reference datasets (same rows)
        assert open(os.path.join(out, name + ".ndm"), "rb").read() == reference[name]["bytes"]
    for name in done:
        assert os.stat(os.path.join(out, name + ".ndm")).st_mtime_ns == stamps[name]


def test_resume_needs_same_settings_same_data_intact_model(swept, tmp_path):
    """Only a report of this very sweep on these very bytes, beside an intact model, counts as done."""
    import shutil
    code, out, data = swept
    ds = sweep.Dataset("ohm", os.path.join(data, "ohm.csv"))
    digest = sweep.file_sha256(ds.path)
    same = sweep.Settings(["a", "b", "c"], ["y"], SEEDS, [SCHEDULE])
    assert sweep.finished_row(out, ds, same, digest).status == "resumed"
    more_seeds = sweep.Settings(["a", "b", "c"], ["y"], SEEDS + [2], [SCHEDULE])
    assert sweep.finished_row(out, ds, more_seeds, digest) is None
    assert sweep.finished_row(out, ds, same, "0" * 64) is None
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    blob = bytearray(open(os.path.join(copy, "ohm.ndm"), "rb").read())
    blob[12] ^= 0xFF
    open(os.path.join(copy, "ohm.ndm"), "wb").write(bytes(blob))
    assert sweep.finished_row(copy, ds, same, digest) is None
    # all done: re-running needs no cluster at all (nothing listens on port 9)
    assert run_cli(*sweep_args(data, out, "--scheduler", "tcp://127.0.0.1:9")) == 2  # broken.csv
    with open(os.path.join(out, "summary.csv")) as fh:
        status = sorted(row["status"] for row in csv.DictReader(fh))
    assert status == ["failed"] + ["resumed"] * len(LAWS)


class CountingClient:
    """The real client, with its scatter() and submit() calls recorded (nothing else changed)."""

    def __init__(self, client):
        self._client = client
        self.scattered = []     # one entry per scatter() call: the keys it made
        self.task_data = {}     # dataset key of each submitted task -> seeds

    def __getattr__(self, name):
        return getattr(self._client, name)

    def scatter(self, data, **kw):
        futures = self._client.scatter(data, **kw)
        self.scattered.append([f.key for f in futures])
        return futures

    def submit(self, func, data, seed, *args, **kw):
        self.task_data.setdefault(data.key, []).append(seed)
        return self._client.submit(func, data, seed, *args, **kw)


def test_each_dataset_is_scattered_once_and_shared_by_its_seeds(cluster, good_data, tmp_path,
                                                                 reference):
    from distributed import Client
    settings = sweep.Settings(["a", "b", "c"], ["y"], SEEDS, [SCHEDULE])
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        spy = CountingClient(client)
        rows = sweep.run_sweep(spy, sweep.find_datasets(good_data), settings, str(tmp_path),
                               progress=False, log=open(os.devnull, "w"))
    assert [r.status for r in rows] == ["annealed"] * len(LAWS)
    assert len(spy.scattered) == len(LAWS) and all(len(k) == 1 for k in spy.scattered)
    assert sorted(spy.task_data) == sorted(k[0] for k in spy.scattered)
    assert all(seeds == SEEDS for seeds in spy.task_data.values())
    for name, ref in reference.items():
        assert (tmp_path / (name + ".ndm")).read_bytes() == ref["bytes"]


def test_loopback_cluster_of_separate_processes(good_data, reference, tmp_path):
    """`dask scheduler` + 2 x `dask worker` on 127.0.0.1 (as users start them): same files."""
    from neurondyn.bench.sweep import loopback_cluster
    out = str(tmp_path / "out")
    with loopback_cluster(str(tmp_path)) as address:
        assert address.startswith("tcp://127.0.0.1:")
        proc = subprocess.run([NDYN, *sweep_args(good_data, out, "--scheduler", address)],
                              capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    for name, ref in reference.items():
        assert open(os.path.join(out, name + ".ndm"), "rb").read() == ref["bytes"], name


def test_local_workers_run_without_malloc_trim_and_profiler():
    """The two Dask defaults that cost an anneal +50 % and +30 % CPU are off in our workers."""
    from distributed import Client
    from neurondyn.bench.sweep import _worker_settings
    from neurondyn.sweep_cluster import start_local_cluster
    with start_local_cluster(1) as cl, Client(cl, set_as_default=False) as client:
        assert list(client.run(_worker_settings).values()) == [(None, False)]
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.scheduler_info()["workers"])
        assert cl.scheduler_address.startswith("tcp://127.0.0.1:")


# -- pieces ------------------------------------------------------------------------

def test_parse_seeds():
    assert sweep.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert sweep.parse_seeds("3,1,3") == [3, 1]
    assert sweep.parse_seeds("0-2,7") == [0, 1, 2, 7]
    for bad in ("", "a", "4-2", "-1", "1-"):
        with pytest.raises(UserError):
            sweep.parse_seeds(bad)


def test_find_datasets(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for p in ("a/x.csv", "a/y.csv", "a/notes.txt", "b/x.csv"):
        (tmp_path / p).write_text("h\n1\n")
    assert [d.name for d in sweep.find_datasets(str(tmp_path / "a"))] == ["x", "y"]
    assert [d.name for d in sweep.find_datasets(str(tmp_path / "a" / "y*"))] == ["y"]
    with pytest.raises(UserError, match="x.ndm"):
        sweep.find_datasets(str(tmp_path / "*" / "x.csv"))
    for missing in (str(tmp_path / "nothing"), str(tmp_path / "*.none")):
        with pytest.raises(UserError):
            sweep.find_datasets(missing)


def test_best_run_is_lowest_energy_first_on_ties_and_failures_are_reported(tmp_path):
    runs = [{"seed": 0, "energy": 5.0}, {"seed": 1, "energy": 2.0},
            {"seed": 2, "energy": 2.0}, {"seed": 3, "error": "boom"}]
    assert sweep.choose_best(runs)["seed"] == 1
    assert sweep.choose_best([{"seed": 0, "error": "x"}]) is None
    assert sweep.Settings(["a"], ["y"], [3, 4], ["s1", "s2"]).runs() == \
        [(3, "s1"), (4, "s1"), (3, "s2"), (4, "s2")]
    ds = sweep.Dataset("gone", str(tmp_path / "gone.csv"))
    settings = sweep.Settings(["a"], ["y"], [0, 1])
    row = sweep.finish_dataset(str(tmp_path), ds, settings, "0" * 64,
                               [{"seed": 0, "error": "ValueError: bad", "seconds": 1.0},
                                {"seed": 1, "error": "ValueError: worse", "seconds": 2.0}])
    assert row.status == "failed" and row.error == "ValueError: bad" and row.seconds == 3.0
    assert os.listdir(tmp_path) == []          # nothing written for a failed dataset


def test_plan_reports_files_ndyn_anneal_refuses_without_a_cluster(tmp_path, good_data):
    """Reading happens before any cluster: bad files become failed rows with their reason."""
    import shutil
    data = tmp_path / "data"
    shutil.copytree(good_data, data)
    (data / "huge.csv").write_text("a,b,c,y\n" + "1,2,3,4\n" * 11 + "1,2,3,5e300\n")
    (data / "short.csv").write_text("a,b,c,y\n1,2,3,4\n")
    (data / "nocol.csv").write_text("a,b,y\n" + "1,2,4\n" * 12)
    settings = sweep.Settings(["a", "b", "c"], ["y"], SEEDS, [SCHEDULE])
    plan = sweep.plan_sweep(sweep.find_datasets(str(data)), settings, str(tmp_path / "out"))
    assert sorted(plan.pending) == sorted(LAWS)
    assert {n: r.status for n, r in plan.rows.items()} == {
        "huge": "failed", "short": "failed", "nocol": "failed"}
    assert "float32" in plan.rows["huge"].error
    assert "column 'c' not found" in plan.rows["nocol"].error
    assert not (tmp_path / "out").exists()        # planning writes nothing


def test_holdout_rows_are_fixed_and_evenly_spread():
    mask = holdout_mask(20, 0.2)
    assert np.flatnonzero(mask).tolist() == [4, 9, 14, 19]
    assert holdout_mask(1000, 0.1).sum() == 100
    assert not holdout_mask(50, 0.0).any()
    assert relative_rmse([1.0, -1.0], [1.0, -1.0]) == 0.0
    assert relative_rmse([2.0, 2.0], [1.0, 1.0]) == pytest.approx(0.5)


def test_bad_options_exit_2_in_one_line(tmp_path, capsys, good_data):
    out = str(tmp_path / "o")
    cases = [
        sweep_args(good_data, out, "--scheduler", "nowhere"),
        sweep_args(str(tmp_path / "missing"), out),
        ["sweep", good_data, "--inputs", "a", "--outputs", "y", "-o", out, "--seeds", "x"],
        ["sweep", good_data, "--inputs", "a", "--outputs", "y", "-o", out, "--holdout", "1.5"],
        ["sweep", good_data, "--inputs", "a", "--outputs", "y", "-o", out,
         "--schedule", "nonsense:1"],
        sweep_args(good_data, out, "--scheduler", "tcp://127.0.0.1:9", "--workers", "2"),
    ]
    for argv in cases:
        assert run_cli(*argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ndyn: error:"), (argv, err)
    assert not os.path.exists(out)
    with pytest.raises(UserError):
        check_scheduler("127.0.0.1")
