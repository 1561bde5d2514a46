"""``ndyn retrain``: the board retrains its own c, a, b from a labelled CSV ("feeling").

The flow (neurondyn.feeling.retrain): pull the board's model and check that
--inputs/--outputs match it (counts, and names when the model carries them);
hold out a deterministic fraction of the rows; the board computes its RMSE on
them (before); the other rows stream to the board, which takes one
normalised-LMS step per row (docs/feeling.md), for --epochs passes with
the step mu halved every pass (--lr sets the first, default 1.5); the board
computes its RMSE again (after) and commits the parameters atomically. When
even an exact refit of c, a, b with the model's exponents stays far from the
data, the law itself changed: the command prints the remelt loop
(pull -> anneal --from --reheat -> flash).
"""
from __future__ import annotations

import json
import sys

import numpy as np

from .. import feeling
from ..data import parse_names, select
from ..errors import DeviceError, UserError

HELP = "retrain the board's model on labelled samples (exponents fixed), then commit"


def register(subparsers):
    p = subparsers.add_parser("retrain", help=HELP, description=HELP + ".")
    p.add_argument("data", metavar="DATA.csv", help="CSV with a header row: inputs and targets")
    p.add_argument("--port", required=True, help="serial port of the board")
    p.add_argument("--inputs", required=True, metavar="A,B,..", help="input column names")
    p.add_argument("--outputs", required=True, metavar="Y,..", help="target column names")
    p.add_argument("--epochs", type=int, default=feeling.EPOCHS,
                   help="passes over the training rows (default %d)" % feeling.EPOCHS)
    p.add_argument("--holdout", type=float, default=feeling.HOLDOUT, metavar="F",
                   help="fraction of rows held out for the board's RMSE (default %.1f)"
                   % feeling.HOLDOUT)
    p.add_argument("--lr", type=float, default=None, metavar="MU",
                   help="step mu of the normalised LMS rule in the first pass, halved every "
                   "pass, 0 < MU < 2 (default %.1f)" % feeling.MU)
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--baud", type=int, default=115200, help="serial speed (default 115200)")
    p.add_argument("--timeout", type=float, default=1.0, metavar="S",
                   help="seconds to wait for one reply before retransmitting (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from tqdm import tqdm
    from ..link import Board

    if args.epochs < 1:
        raise UserError("--epochs must be at least 1, got %d" % args.epochs)
    if not 0.0 < args.holdout < 1.0:
        raise UserError("--holdout must be a fraction between 0 and 1, got %g" % args.holdout)
    if args.lr is not None and not 0.0 < args.lr < 2.0:
        raise UserError("--lr must be between 0 and 2 (exclusive), got %g" % args.lr)
    inputs = parse_names(args.inputs, "--inputs")
    outputs = parse_names(args.outputs, "--outputs")
    X, Y = select(args.data, inputs, outputs, min_rows=2)
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise UserError("%s: every input and target cell must be a finite number" % args.data)

    with Board.open(args.port, baud=args.baud, timeout=args.timeout) as board:
        if not board.info["model_loaded"]:
            raise DeviceError("the board at %s has no model: flash one with `ndyn flash`" % args.port)
        bar = tqdm(unit="sample", desc="retrain", file=sys.stderr, disable=None, leave=False)

        def progress(n, total):
            if total is not None:
                bar.reset(total=total)
            if n:
                bar.update(n)
        try:
            out = feeling.retrain(board, X, Y, inputs, outputs, epochs=args.epochs,
                                  holdout=args.holdout, mu=args.lr or 0.0, progress=progress)
        finally:
            bar.close()
    print("ndyn retrain: board RMSE on %d held-out rows: before %.6g, after %.6g "
          "(%d rows x %d epochs; model %08x committed)"
          % (out["holdout_rows"], out["rmse_before"], out["rmse_after"], out["train_rows"],
             out["epochs"], out["model_hash"]))
    if out["rows_dropped"]:
        print("ndyn retrain: %d rows skipped (an input outside the model's channel map)"
              % out["rows_dropped"], file=sys.stderr)
    if out["structural_change"]:
        print("ndyn retrain: a structural change: even an exact refit of c, a, b with the "
              "board's exponents reaches only RMSE %.6g (target spread %.6g). Remelt on the host:\n"
              "  ndyn pull --port %s -o PULLED.ndm && ndyn anneal %s --inputs %s --outputs %s "
              "--from PULLED.ndm --reheat 0.1 -o NEW.ndm && ndyn flash NEW.ndm --board BOARD "
              "--port %s" % (out["refit_rmse"], out["target_rms_spread"], args.port, args.data,
                             ",".join(inputs), ",".join(outputs), args.port))
    elif out["not_converged"]:
        print("ndyn retrain: a refit of c, a, b with the same exponents reaches RMSE %.6g: more "
              "samples or --epochs would get closer" % out["refit_rmse"])
    if args.json:
        out = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in out.items()}
        out["model_hash"] = "%08x" % out["model_hash"]
        out["old_hash"] = "%08x" % out["old_hash"]
        print(json.dumps(out), flush=True)
    return 0
