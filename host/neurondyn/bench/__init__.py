"""Benchmarks behind ``ndyn bench`` (DESIGN.md §10): a registry of suites.

A suite is a function ``run(ctx: BenchContext) -> SuiteResult`` living in its
own module.  Registering one is a single line in ``SUITES`` (name ->
"module:function"); the module is imported only when the suite is asked for,
so a suite whose module does not exist yet (or whose prerequisites are
missing) is reported as "not available yet" instead of crashing the others.
A suite module may define ``check_available()`` that raises SuiteUnavailable
when something it needs (another part of the product) is missing.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field

# name -> "module:function".  Order = order of `ndyn bench` with no suite.
SUITES = {
    "recovery": "neurondyn.bench.recovery:run",
    "optimizer": "neurondyn.bench.optimizer:run",
    "device": "neurondyn.bench.device:run",
    "streaming": "neurondyn.bench.streaming:run",
    "feeling": "neurondyn.bench.feeling:run",
    "reliability": "neurondyn.bench.reliability:run",
    "export": "neurondyn.bench.export:run",
    "sweep": "neurondyn.bench.sweep:run",
}


class SuiteUnavailable(Exception):
    """The suite's module (or something it needs) is not there yet."""


@dataclass
class BenchContext:
    """What every suite receives.

    ``quick``: the small version (minutes, not hours).  ``jobs``: worker
    processes (default 1 so that per-problem timings are single-core honest).
    ``checkpoint``: a path prefix where a suite may keep partial results so an
    interrupted run resumes (None = no checkpoint).  ``progress``: show a
    progress bar on stderr.  ``options``: suite-specific extras from the CLI.
    """
    quick: bool = False
    jobs: int = 1
    checkpoint: str | None = None
    progress: bool = True
    options: dict = field(default_factory=dict)


@dataclass
class SuiteResult:
    """``markdown``: the tables for stdout/README; ``data``: raw results for --json."""
    name: str
    markdown: str
    data: dict


def as_context(ctx) -> "BenchContext":
    """A suite's context; ``run()`` / ``run(quick)`` called from a script get a default one."""
    if ctx is None or isinstance(ctx, bool):
        return BenchContext(quick=bool(ctx))
    return ctx


def progress_log(ctx: "BenchContext"):
    """A function printing a suite's progress lines on stderr (silent without progress)."""
    if not ctx.progress:
        return lambda msg: None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def needs_qemu() -> None:
    """``check_available`` of the suites that run the virtual micro:bit."""
    from ..vboard import require_qemu
    try:
        require_qemu()
    except Exception as exc:
        raise SuiteUnavailable("needs qemu-system-arm (%s)" % exc)


def load_suite(name: str):
    """Return the suite's run function, or raise SuiteUnavailable / KeyError."""
    target = SUITES[name]
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise SuiteUnavailable("not available yet (%s is not built)" % module_name)
        raise SuiteUnavailable("not available yet (needs %s)" % exc.name)
    func = getattr(module, func_name, None)
    if func is None:
        raise SuiteUnavailable("not available yet (%s has no %s())" % (module_name, func_name))
    check = getattr(module, "check_available", None)
    if check is not None:       # optional hook: raises SuiteUnavailable if a prerequisite is missing
        check()
    return func


def suite_status() -> list:
    """[(name, None or reason it is unavailable)] for every registered suite."""
    out = []
    for name in SUITES:
        try:
            load_suite(name)
            out.append((name, None))
        except SuiteUnavailable as exc:
            out.append((name, str(exc)))
    return out
