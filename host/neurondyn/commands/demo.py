"""``ndyn demo``: the whole pipeline on the bundled datasets, as a list of steps.

A step is a function ``step(ctx)`` that does one stage, prints what it shows,
and appends sentences to ``ctx["summary"]``; the demo runs the steps in order
and ends with a one-paragraph summary.  The host half (this module) anneals
every bundled dataset: progress bar, formula, K*, whether the known law was
recovered exactly, the model file and its phase-diagram PNG in ``demo-out/``.

The board half (flash the virtual micro:bit, stream, retrain, pull) plugs in
as more steps: a module ``neurondyn.demo_board`` exposing ``STEPS`` (a list of
step functions) is picked up when present; until then the demo says so.
``ctx["models"]`` maps dataset name -> path of its annealed .ndm for them.
"""
from __future__ import annotations

import importlib
import os
import time

from ..datasets import DATASETS
from ..errors import UserError
from ..data import parse_names
from .anneal import anneal_file, parse_schedule_text

HELP = "whole pipeline on the bundled data (host half: anneal, formulas, phase diagrams)"


def register(subparsers):
    p = subparsers.add_parser("demo", help=HELP, description=HELP + ".")
    p.add_argument("--out", default="demo-out", metavar="DIR",
                   help="folder for models, reports and phase diagrams (default ./demo-out)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--only", metavar="NAME,..",
                   help="bundled datasets to use (default: all of %s)" % ", ".join(DATASETS))
    p.add_argument("--schedule", metavar="TEXT",
                   help="cooling schedule for every anneal (default: each dataset's own)")
    p.set_defaults(func=run)


def _same_structure(model, ds) -> bool:
    return model.k_star == len(ds.truth) and model.atom_set() == ds.truth_set()


def step_anneal_datasets(ctx):
    """Anneal each bundled dataset; print its formula and K*; write model, report, PNG."""
    recovered = []
    for name in ctx["datasets"]:
        ds = DATASETS[name]
        print("\n== %s: %s" % (name, ds.description))
        print("   %d rows, %d inputs -> %d outputs (%s)"
              % (ds.rows, len(ds.inputs), len(ds.outputs), ds.path))
        base = os.path.join(ctx["out"], name)
        result = anneal_file(str(ds.path), ds.inputs, ds.outputs, base + ".ndm", pool=ds.pool,
                             seed=ctx["seed"], schedule=ctx["schedule"] or ds.schedule,
                             report=base + ".json", plot=base + "-phase.png",
                             title="%s (%d -> %d)" % (name, len(ds.inputs), len(ds.outputs)))
        model, ann = result["model"], result["annealer"]
        lines = result["formula"]
        shown = lines if len(lines) <= 4 else lines[:3] + ["... (%d more outputs; ndyn inspect %s.ndm)"
                                                           % (len(lines) - 3, base)]
        for line in shown:
            print("   " + line)
        exact = _same_structure(model, ds)
        recovered.append(exact)
        print("   K* = %d (truth K = %d), structure %s, loss %.3g, %.1f s, %d bytes; phase diagram %s"
              % (ann.k_star_, len(ds.truth), "recovered exactly" if exact else "NOT the true one",
                 float(ann.loss_), result["seconds"], result["bytes"], base + "-phase.png"))
        if ann.saturated_:
            print("   note: the pool saturated; a larger --pool might add atoms")
        ctx["models"][name] = base + ".ndm"
        ctx["results"][name] = {"k_star": int(ann.k_star_), "truth_k": len(ds.truth),
                                "exact": exact, "seconds": result["seconds"],
                                "bytes": result["bytes"]}
    n_exact = sum(recovered)
    total_s = sum(r["seconds"] for r in ctx["results"].values())
    ctx["summary"].append(
        "Annealing recovered the exact law (same atoms, K* = K) for %d of %d bundled datasets "
        "in %.0f s of annealing (%s)." % (
            n_exact, len(recovered), total_s,
            "; ".join("%s: K* = %d of %d" % (n, r["k_star"], r["truth_k"])
                      for n, r in ctx["results"].items())))
    ctx["summary"].append(
        "Every model is a few multiplies per atom with integer exponents in {-2..2}: %s bytes as "
        ".ndm files, written to %s/ with a report and a phase diagram (tau, atoms, energy, loss "
        "against the step) each." % (
            ", ".join("%d" % r["bytes"] for r in ctx["results"].values()), ctx["out"]))


def board_steps() -> list:
    """Steps of the board half, if its module exists (another issue builds it)."""
    try:
        module = importlib.import_module("neurondyn.demo_board")
    except ModuleNotFoundError as exc:
        if exc.name == "neurondyn.demo_board":
            return []
        raise
    return list(getattr(module, "STEPS", []))


def steps() -> list:
    return [step_anneal_datasets] + board_steps()


def run(args) -> int:
    out = args.out
    names = list(DATASETS)
    if args.only is not None:
        names = parse_names(args.only, "--only")
        unknown = [n for n in names if n not in DATASETS]
        if unknown:
            raise UserError("unknown dataset '%s' (bundled: %s)" % (unknown[0], ", ".join(DATASETS)))
    if args.schedule is not None:
        parse_schedule_text(args.schedule)          # fail before any work
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError("%s: exists and is not a folder" % out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UserError("%s: cannot create folder (%s)" % (out, exc.strerror or exc)) from None
    ctx = {"out": out, "seed": args.seed, "schedule": args.schedule, "datasets": names,
           "models": {}, "results": {}, "summary": []}
    started = time.perf_counter()
    todo = steps()
    for step in todo:
        step(ctx)
    if len(todo) == 1:
        ctx["summary"].append("The board half (flash, stream, retrain on a virtual micro:bit) "
                              "is not part of this build yet.")
    print("\nSummary (%.0f s): %s" % (time.perf_counter() - started, " ".join(ctx["summary"])))
    return 0
