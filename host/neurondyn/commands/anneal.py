"""``ndyn anneal``: grow a model from a CSV file by annealing a neuron pool.

Everything that can be checked before the (long) annealing is checked first:
the schedule text, ``--from``/``--reheat`` pairing, that every output file can
be created, the data, and that a remelted model speaks about the same columns.
So a typo costs a second, not a minute, and no output file is ever left half
written (all writes are atomic).

The progress bar (stderr) shows tau, the number of atoms and the loss while
the pool cools.  At the end the formula and K* go to stdout; if the pool
saturated (K* = n while another atom would still lower the energy) a note on
stderr suggests a larger ``--pool``; that is advice, not an error (exit 0).
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from ..data import MIN_TRAIN_ROWS, check_writable, parse_names, read_model, select, write_output
from ..errors import UserError
from ..formula import channel_lines, formula_lines

HELP = "grow a model from DATA.csv by annealing a neuron pool"
FLOAT32_LIMIT = 1e38          # just below float32's largest finite value (3.4e38)


def register(subparsers):
    p = subparsers.add_parser("anneal", help=HELP, description=HELP + ".")
    p.add_argument("data", metavar="DATA.csv", help="training data: header row, one column per signal")
    p.add_argument("--inputs", metavar="A,B,..",
                   help="input (sensor) columns; default with --from: the model's inputs")
    p.add_argument("--outputs", metavar="Y,..",
                   help="output (actuator) columns; default with --from: the model's outputs")
    p.add_argument("-o", "--output", metavar="MODEL.ndm", required=True, help="model file to write")
    p.add_argument("--pool", type=int, metavar="N",
                   help="pool capacity n: the most atoms the model may keep (default: d_in)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--schedule", metavar="TEXT",
                   help="cooling schedule, e.g. geometric:30:0.02:4000 (kind:tau_start:tau_end:steps)")
    p.add_argument("--no-quantize", action="store_true",
                   help="keep real-valued exponents (the board needs quantized models)")
    p.add_argument("--report", metavar="REPORT.json", help="write the run's report (JSON)")
    p.add_argument("--plot", metavar="PHASE.png", help="write the phase diagram (PNG)")
    p.add_argument("--from", dest="from_model", metavar="MODEL.ndm",
                   help="remelt this model on the new data (needs --reheat)")
    p.add_argument("--reheat", type=float, metavar="TAU",
                   help="temperature to which the --from model is heated before cooling again")
    p.set_defaults(func=run)


class ProgressBar:
    """A tqdm bar on stderr fed by the annealer's ``progress`` callback."""

    def __init__(self, desc="anneal"):
        self.desc = desc
        self.bar = None

    def __call__(self, info):
        from tqdm import tqdm
        steps = int(info.get("steps") or 0) or None
        if self.bar is None:
            self.bar = tqdm(total=steps, desc=self.desc, unit="step", file=sys.stderr,
                            dynamic_ncols=True, leave=True, mininterval=0.2)
        self.bar.total = steps
        self.bar.n = int(info.get("step", 0))
        self.bar.set_postfix_str("tau=%.3g atoms=%d loss=%.3g" % (
            float(info.get("tau", float("nan"))), int(info.get("atoms", 0)),
            float(info.get("loss", float("nan")))), refresh=False)
        self.bar.refresh()

    def finish(self, atoms, loss):
        """Show the crystal's numbers (after the zero-temperature pass and refit)."""
        if self.bar is not None:
            self.bar.set_postfix_str("tau=0 atoms=%d loss=%.3g" % (atoms, loss), refresh=False)

    def close(self):
        if self.bar is not None:
            if self.bar.total:
                self.bar.n = self.bar.total
                self.bar.refresh()
            self.bar.close()
            self.bar = None


def _check_float32_range(data, values, names):
    """Boards compute in float32 and .ndm stores float32: refuse columns beyond its range."""
    big = np.abs(values) > FLOAT32_LIMIT
    if np.any(big):
        i, j = (int(v[0]) for v in np.nonzero(big))
        raise UserError("%s row %d, column '%s': %r is beyond the float32 range a model and a "
                        "board can hold (|value| <= %.0e); rescale the column"
                        % (data, i + 1, names[j], float(values[i, j]), FLOAT32_LIMIT))


def parse_schedule_text(text):
    """The annealer's schedule object for ``text`` (None: default); UserError on bad text."""
    if text is None:
        return None
    from ..anneal import parse_schedule
    try:
        return parse_schedule(text)
    except ValueError as exc:
        raise UserError("bad --schedule '%s': %s" % (text, exc)) from None


def anneal_file(data, inputs, outputs, output, pool=None, seed=0, schedule=None, quantize=True,
                report=None, plot=None, init=None, reheat=None, title=None, progress=True):
    """Anneal ``data`` and write the model (and report/plot); return a result dict.

    Shared by ``ndyn anneal`` and ``ndyn demo``.  ``schedule`` is the text form.
    """
    sched = parse_schedule_text(schedule)
    for path, what in ((output, "model"), (report, "report"), (plot, "plot")):
        if path is not None:
            check_writable(path, what)
    if pool is not None and not 1 <= pool <= 255:
        raise UserError("--pool must be between 1 and 255, got %d" % pool)
    if reheat is not None and not (math.isfinite(reheat) and reheat > 0):
        raise UserError("--reheat must be a positive temperature, got %s" % reheat)
    X, Y = select(data, inputs, outputs, min_rows=MIN_TRAIN_ROWS)
    _check_float32_range(data, X, inputs)
    _check_float32_range(data, Y, outputs)
    if init is not None and (list(init.inputs) != list(inputs) or list(init.outputs) != list(outputs)):
        raise UserError("the --from model maps %s -> %s, but the columns given are %s -> %s"
                        % (",".join(init.inputs), ",".join(init.outputs),
                           ",".join(inputs), ",".join(outputs)))

    if init is not None:
        valid = init.valid_rows(X)
        if not np.all(valid):
            i = int(np.flatnonzero(~valid)[0])
            raise UserError("%s: data row %d maps to a non-positive input under the --from "
                            "model's channel map; remelting needs data inside it" % (data, i + 1))
    from ..anneal import Annealer
    from ..model import InvalidInput
    bar = ProgressBar(title or "anneal") if progress else None
    started = time.perf_counter()
    try:
        ann = Annealer(pool=pool, seed=seed, schedule=sched, quantize=quantize,
                       reheat=reheat, progress=bar).fit(X, Y, inputs=list(inputs),
                                                        outputs=list(outputs), init=init)
    except InvalidInput as exc:
        rows = getattr(exc, "rows", [])
        where = " (data row %d)" % (rows[0] + 1) if rows else ""
        raise UserError("%s: %s%s" % (data, exc, where)) from None
    except ValueError as exc:          # the annealer refuses these data or settings
        raise UserError("cannot anneal %s: %s" % (data, exc)) from None
    else:
        if bar is not None:
            bar.finish(ann.k_star_, float(ann.loss_))
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started

    from .. import ndm
    model = ann.model_
    blob = ndm.dumps(model)
    formula = formula_lines(model)
    write_output(output, blob, "model")
    result = {"model": model, "annealer": ann, "formula": formula, "bytes": len(blob),
              "seconds": seconds, "data": str(data), "output": str(output)}
    if report is not None or plot is not None:
        from ..report import build_report, write_phase_plot, write_report
        if report is not None:
            write_report(report, build_report(ann, model, data, output, formula,
                                              {"seconds": seconds, "bytes": len(blob),
                                               "seed": seed, "schedule": schedule,
                                               "pool": pool, "quantized": bool(quantize)}))
        if plot is not None:
            write_phase_plot(plot, ann.history_, title or "phase diagram: %s" % data)
    return result


def print_result(result, pool=None, out=None):
    """Formula lines, the channel map, K* and where the model went (to ``out``, default stdout).

    ``out`` is looked up at call time: a default bound at import would keep
    whatever sys.stdout was then (a closed capture, when run in-process).
    """
    out = out if out is not None else sys.stdout
    model, ann = result["model"], result["annealer"]
    for line in formula_lines(model):
        print(line, file=out)
    for line in channel_lines(model):
        print("  where " + line, file=out)
    n = pool if pool is not None else model.d_in
    print("K* = %d atom%s (pool n = %d), loss %.3g, %.1f s; wrote %s (%d bytes)"
          % (ann.k_star_, "" if ann.k_star_ == 1 else "s", n, float(ann.loss_),
             result["seconds"], result["output"], result["bytes"]), file=out)
    if ann.saturated_:
        print("ndyn: note: the pool saturated (K* = n = %d and another atom would still lower "
              "the energy); try a larger pool, e.g. --pool %d" % (ann.k_star_, 2 * n),
              file=sys.stderr)


def run(args) -> int:
    if (args.from_model is None) != (args.reheat is None):
        raise UserError("--from and --reheat go together: remelting needs both a model "
                        "and a temperature")
    init = read_model(args.from_model) if args.from_model is not None else None
    if args.inputs is None and init is None:
        raise UserError("--inputs is required (the input columns, e.g. --inputs q1,q2,r)")
    if args.outputs is None and init is None:
        raise UserError("--outputs is required (the output columns, e.g. --outputs F)")
    inputs = parse_names(args.inputs, "--inputs") if args.inputs is not None else list(init.inputs)
    outputs = (parse_names(args.outputs, "--outputs") if args.outputs is not None
               else list(init.outputs))
    result = anneal_file(args.data, inputs, outputs, args.output, pool=args.pool, seed=args.seed,
                         schedule=args.schedule, quantize=not args.no_quantize,
                         report=args.report, plot=args.plot, init=init, reheat=args.reheat)
    print_result(result, args.pool)
    return 0
