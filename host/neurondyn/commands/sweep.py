"""``ndyn sweep``: anneal a fleet of datasets x seeds on Dask (see ``neurondyn.sweep``)."""
from __future__ import annotations

import os
import sys

from ..errors import UserError

NAME = "sweep"


def register(subparsers):
    p = subparsers.add_parser(
        NAME, help="anneal many datasets x seeds on a Dask cluster; keep the best model of each",
        description="One anneal task per (dataset, seed, schedule) on a Dask cluster. Per dataset "
                    "the lowest-energy model is written as OUT_DIR/NAME.ndm with "
                    "NAME.report.json; OUT_DIR/summary.csv lists every dataset. Re-running "
                    "skips datasets already done with the same settings. A dataset that "
                    "fails is reported in the summary and the exit status is 2.")
    p.add_argument("data", nargs="+", metavar="DATA_DIR_OR_GLOB",
                   help="a folder of .csv files, a glob such as 'logs/*.csv', or files")
    p.add_argument("--inputs", required=True, help="input column names, comma separated")
    p.add_argument("--outputs", required=True, help="output column names, comma separated")
    p.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--seeds", default="0-4", help="seeds: a range like 0-4 or a list 1,5,9 "
                                                  "(default 0-4)")
    p.add_argument("--schedule", action="append", default=None,
                   help="cooling schedule as for `ndyn anneal`; repeat to sweep schedules too")
    p.add_argument("--pool", type=int, default=None, help="pool capacity n (default: d_in)")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="fraction of rows held out for the test error (evenly spaced rows, "
                        "every 5th for 0.2); 0 skips the test error (default 0.2)")
    p.add_argument("--scheduler", default="local",
                   help="'local' (a LocalCluster on 127.0.0.1) or tcp://HOST:PORT of a running "
                        "`dask scheduler` (default local)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local cluster (default: CPU count)")
    p.add_argument("--dashboard", action="store_true",
                   help="serve the Dask dashboard of the local cluster on 127.0.0.1:8787")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import sweep
    from ..data import parse_names
    from ..sweep_cluster import check_dashboard, check_scheduler, open_client

    settings = sweep.Settings(
        inputs=parse_names(args.inputs, "--inputs"), outputs=parse_names(args.outputs, "--outputs"),
        seeds=sweep.parse_seeds(args.seeds), schedules=args.schedule or [None],
        pool=args.pool, holdout=args.holdout)
    sweep.check_settings(settings)
    check_scheduler(args.scheduler)
    if args.scheduler != "local" and args.workers is not None:
        raise UserError("--workers applies to --scheduler local only; "
                        "an existing cluster has the workers it was given")
    if args.dashboard:
        if args.scheduler != "local":
            raise UserError("--dashboard applies to --scheduler local only; an existing "
                            "cluster's dashboard is wherever its scheduler serves it")
        check_dashboard()
    datasets = sweep.find_datasets(args.data)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError("%s: exists and is not a folder" % args.out)

    plan = sweep.plan_sweep(datasets, settings, args.out)   # reads every file first
    if plan.pending:
        with open_client(args.scheduler, args.workers, args.dashboard) as client:
            rows = sweep.run_sweep(client, datasets, settings, args.out,
                                   progress=not args.no_progress, plan=plan)
    else:   # all done earlier (or unreadable): no cluster needed
        rows = sweep.run_sweep(None, datasets, settings, args.out, plan=plan)
    print(sweep.format_table(rows))
    sys.stdout.flush()
    failed = [r for r in rows if r.status == "failed"]
    if failed:
        raise UserError("%d of %d dataset(s) failed (first: %s); see %s"
                        % (len(failed), len(rows), failed[0].dataset,
                           os.path.join(args.out, sweep.SUMMARY_NAME)))
    return 0
