"""Where a sweep's tasks run: a Dask client on a local or an existing cluster.

``local`` starts a ``LocalCluster`` of worker *processes* (one thread each, so
a numpy-heavy anneal gets a core of its own and BLAS threads do not fight),
bound to 127.0.0.1 so nothing listens beyond this machine, and without the
dashboard unless asked.  ``tcp://HOST:PORT`` connects to a cluster the user
started (``dask scheduler`` and ``dask worker`` on their machines); the
workers there need ``neurondyn`` installed, since they import the task code.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager

from .errors import UserError

# Two Dask worker defaults that cost an anneal (numpy arrays made and dropped in a
# tight loop) a lot of CPU, measured: MALLOC_TRIM_THRESHOLD_=65536, which Dask puts
# in every worker's environment, turns off glibc's adaptive mmap threshold (+50 %
# CPU per task), and the statistical profiler samples the task thread every 10 ms
# (+30 %).  Without both, a task costs the same CPU in a worker as in a plain loop.
# Workers of a user's own cluster get the same from FAST_WORKER_YAML saved as
# ~/.config/dask/ndyn-sweep.yaml on their machines (a DASK_... environment variable
# cannot do it: it would add a lower-case key beside MALLOC_TRIM_THRESHOLD_).
MALLOC_VAR = "MALLOC_TRIM_THRESHOLD_"
FAST_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                      "distributed.worker.profile.enabled": False}
FAST_WORKER_YAML = """\
# ndyn sweep: Dask workers that run anneals as fast as a plain process
distributed:
  nanny:
    pre-spawn-environ:
      MALLOC_TRIM_THRESHOLD_: null
  worker:
    profile:
      enabled: false
"""


def fast_worker_env(folder) -> dict:
    """Environment for ``dask scheduler``/``dask worker`` processes: FAST_WORKER_YAML in ``folder``.

    DASK_CONFIG points Dask at ``folder`` instead of ~/.config/dask.
    """
    with open(os.path.join(folder, "ndyn-sweep.yaml"), "w") as fh:
        fh.write(FAST_WORKER_YAML)
    env = dict(os.environ, DASK_CONFIG=os.path.abspath(folder))
    env.pop(MALLOC_VAR, None)     # left here by any earlier Dask cluster of this process
    return env


LOOPBACK = "127.0.0.1"
DASHBOARD_ADDRESS = LOOPBACK + ":8787"
CONNECT_TIMEOUT_S = 20
WORKER_WAIT_S = 120


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def check_scheduler(text: str) -> str:
    """``local`` or an address such as ``tcp://127.0.0.1:8786``; anything else is a UserError."""
    if text == "local":
        return text
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme or not rest or ":" not in rest:
        raise UserError("--scheduler must be 'local' or an address like tcp://HOST:PORT (got '%s')"
                        % text)
    return text


def check_dashboard():
    """The dashboard needs bokeh, which the sweep itself does not: say so before any work."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        raise UserError("--dashboard needs bokeh: pip install 'bokeh>=3.1'") from None


def _quiet_dask_logs(level=logging.ERROR):
    """Dask logs every worker restart; the sweep reports what matters itself.

    The scheduler's complaint that a dead worker took scattered data with it
    is an ERROR to Dask but routine here: the sweep scatters that dataset
    again and resubmits its tasks.
    """
    for name in ("distributed", "distributed.nanny", "distributed.worker",
                 "distributed.core", "distributed.client"):
        logging.getLogger(name).setLevel(level)
    logging.getLogger("distributed.scheduler").setLevel(logging.CRITICAL)


def dask_setup(worker):
    """Preload hook run inside each local worker process: leave Ctrl-C to the sweep.

    A terminal sends SIGINT to the whole process group; the worker processes
    would die with a traceback each.  The sweep (the parent) catches it,
    cancels its tasks and closes the cluster, which stops the workers cleanly.
    """
    import signal
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread of the worker process
        pass


def start_local_cluster(workers, dashboard=False, preload=True):
    """A LocalCluster of ``workers`` single-thread processes, every address on 127.0.0.1."""
    import dask
    from distributed import LocalCluster
    # Without a dashboard the scheduler still serves /health on HTTP; put that on a free
    # loopback port rather than 8787, which a user's own dashboard may hold.
    http = ({} if dashboard else
            {"scheduler_kwargs": {"dashboard": False, "dashboard_address": LOOPBACK + ":0"}})
    # A Dask nanny copies its pre-spawn environment into this process's own, so any
    # cluster started earlier here (with Dask's defaults) left MALLOC_TRIM_THRESHOLD_
    # behind for our workers to inherit: hide it while they are spawned.
    hidden = os.environ.pop(MALLOC_VAR, None)
    try:
        with dask.config.set(FAST_WORKER_CONFIG):   # captured by each nanny, restarts included
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                host=LOOPBACK, scheduler_port=0,
                                dashboard_address=DASHBOARD_ADDRESS if dashboard else None,
                                silence_logs=logging.ERROR,
                                preload=[__name__] if preload else [], **http)
    finally:
        if hidden is not None:
            os.environ[MALLOC_VAR] = hidden


@contextmanager
def _ctrl_c_deferred():
    """Hold Ctrl-C (SIGINT) back while Dask sets up, deliver it right after.

    A KeyboardInterrupt raised while the main thread waits on a lock that
    Dask's IO thread also takes can leave that lock held; the cleanup then
    waits for the IO thread forever.  Starting a cluster and connecting are
    such waits, and short, so the signal simply waits for them to finish.
    """
    import signal
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextmanager
def open_client(scheduler="local", workers=None, dashboard=False, log=sys.stderr):
    """Yield a connected ``distributed.Client``; close it (and a local cluster) on exit."""
    from distributed import Client

    scheduler = check_scheduler(scheduler)
    if scheduler == "local":
        n = default_workers() if workers is None else int(workers)
        if n < 1:
            raise UserError("--workers must be at least 1")
        if dashboard:
            check_dashboard()
    elif workers is not None:
        raise UserError("--workers applies to --scheduler local only; "
                        "an existing cluster has the workers it was given")
    _quiet_dask_logs()
    cluster = client = None
    try:
        with _ctrl_c_deferred():
            if scheduler == "local":
                cluster = start_local_cluster(n, dashboard)
                client = Client(cluster, set_as_default=False)
            else:
                try:
                    client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
                except (OSError, TimeoutError) as exc:
                    raise UserError("cannot reach the Dask scheduler at %s (%s)"
                                    % (scheduler, " ".join(str(exc).split())
                                       or type(exc).__name__)) from None
        if dashboard and client.dashboard_link:
            print("sweep: dashboard at %s" % client.dashboard_link, file=log)
        if not worker_count(client):
            print("sweep: waiting for workers to join %s" % scheduler, file=log)
            deadline = time.monotonic() + WORKER_WAIT_S
            while not worker_count(client):      # mostly asleep here: safe to Ctrl-C
                if time.monotonic() > deadline:
                    raise UserError("no worker joined the scheduler at %s within %d s"
                                    % (scheduler, WORKER_WAIT_S))
                time.sleep(0.5)
        yield client
    finally:
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()


def worker_count(client) -> int:
    return len(client.scheduler_info().get("workers", {}))
