"""``ndyn bench [SUITE] [--quick] [--json OUT]``: the benchmarks of DESIGN.md §10.

Markdown tables go to stdout (the README pastes them), a progress bar over
problems to stderr, and ``--json OUT`` receives every raw result (atomic write).
With ``--json`` the run is also resumable: finished problems are appended to
``OUT.partial.<suite>.jsonl`` and a rerun of the same command skips them; the
partial files are removed once OUT is written.

Sizes (CPU time on one idle core, measured on the shared development machine):
``recovery --quick`` 72 grid problems (both input ranges) + 18 laws, 2.5 min
with ``--jobs 2``; the full ``recovery`` 1,440 grid problems (U[1,5] and
U[0.5,2], the issue's grid) + 36 law runs, 45 min with ``--jobs 2`` on the
2-core machine, about twice that on one core (``--x-ranges 1-5`` or ``0.5-2``
halves the grid);
``optimizer --quick`` a few seconds, full about 3 min.  Interrupt a long run
and rerun the same command with the same ``--json`` to resume it.
"""
from __future__ import annotations

import glob
import json
import math
import os
import sys
import time

from ..errors import UserError

HELP = "run benchmarks (recovery, optimizer, ...) and print markdown tables"


def register(subparsers):
    p = subparsers.add_parser("bench", help=HELP, description=HELP)
    p.add_argument("suite", nargs="?", metavar="SUITE",
                   help="one suite (default: every available one); --list shows them")
    p.add_argument("--quick", action="store_true", help="small version: minutes, not hours")
    p.add_argument("--json", metavar="OUT", help="write all raw results to OUT (JSON); "
                   "also makes the run resumable")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="worker processes (default 1: per-problem times stay single-core "
                        "honest; more jobs only if that many cores are idle)")
    p.add_argument("--x-ranges", choices=("1-5", "0.5-2", "all"), default="all",
                   help="recovery: input range(s): U[1,5], U[0.5,2] or both (default: both, "
                        "the issue's grid)")
    p.add_argument("--list", action="store_true", help="list the suites and whether they exist")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def _check_output(path):
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UserError("--json %s is a directory" % path)
    if not os.path.isdir(folder):
        raise UserError("--json %s: folder %s does not exist" % (path, folder))
    if not os.access(folder, os.W_OK):
        raise UserError("--json %s: folder %s is not writable" % (path, folder))


def run(args) -> int:
    from ..bench import SUITES, BenchContext, SuiteUnavailable, load_suite, suite_status
    from ..fsutil import atomic_write_text

    if args.list:
        for name, reason in suite_status():
            print("%-12s %s" % (name, "available" if reason is None else reason))
        return 0
    if args.suite is not None and args.suite not in SUITES:
        raise UserError("unknown suite %r (choose from: %s)" % (args.suite, ", ".join(SUITES)))
    if args.jobs < 1:
        raise UserError("--jobs must be at least 1, got %d" % args.jobs)
    if args.json:
        _check_output(args.json)

    ranges = {"1-5": [0], "0.5-2": [1], "all": [0, 1]}[args.x_ranges]
    ctx = BenchContext(quick=args.quick, jobs=args.jobs,
                       checkpoint=(args.json + ".partial") if args.json else None,
                       progress=not args.no_progress, options={"x_ranges": ranges})
    names = [args.suite] if args.suite else list(SUITES)
    results, skipped, failed = {}, {}, {}
    started = time.time()
    for name in names:
        try:
            func = load_suite(name)
            result = func(ctx)
        except SuiteUnavailable as exc:
            if args.suite:          # asked for explicitly: that is an error
                raise UserError("suite %s: %s" % (name, exc))
            skipped[name] = str(exc)
            print("suite %s: %s" % (name, exc), file=sys.stderr)
            continue
        except (KeyboardInterrupt, UserError):
            raise
        except Exception as exc:    # running them all: one broken suite must not lose the rest
            if args.suite or os.environ.get("NDYN_DEBUG"):
                raise
            failed[name] = "%s: %s" % (type(exc).__name__, exc)
            print("suite %s failed: %s" % (name, failed[name]), file=sys.stderr)
            continue
        results[name] = result.data
        sys.stdout.write(result.markdown + "\n")
        sys.stdout.flush()
    if not results and not failed:
        raise UserError("no benchmark suite is available yet")
    if args.json:
        payload = {"quick": args.quick, "jobs": args.jobs, "wall_seconds": time.time() - started,
                   "suites": results, "unavailable": skipped, "failed": failed}
        atomic_write_text(args.json, json.dumps(_strict(payload), indent=1) + "\n")
        for path in glob.glob(glob.escape(args.json + ".partial") + ".*.jsonl"):
            if not any(os.path.basename(path).endswith(".%s.jsonl" % f) for f in failed):
                os.unlink(path)     # a failed suite keeps its partial results for the rerun
    return 1 if failed else 0


def _strict(value):
    """Plain, strict JSON: numpy values unwrapped, NaN -> null, +-inf -> "inf"/"-inf"."""
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if hasattr(value, "tolist"):            # numpy scalar or array
        return _strict(value.tolist())
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value
