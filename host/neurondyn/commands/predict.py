"""``ndyn predict``: run a model over a CSV file (host, log-space forward pass).

Input columns are found by the model's input names, in any order, among any
other columns.  Output is CSV with the model's output names as header and
every value at full float precision (``repr``), to ``-o OUT.csv`` or stdout.

A row whose inputs map to a non-positive, NaN or infinite value (outside the
domain of a power law) is an error for the whole command: exit 2 naming the
first such row and column, and no output file.  We chose this over skipping
the row or writing NaN: a skipped row silently misaligns outputs with inputs,
and a NaN poisons whatever reads the file next.  Filter the data, or re-anneal
on data that covers the new range.
"""
from __future__ import annotations

import numpy as np

from ..data import check_writable, read_model, read_table, write_csv
from ..errors import UserError

HELP = "predict outputs for DATA.csv with a model"


def register(subparsers):
    p = subparsers.add_parser("predict", help=HELP, description=HELP + ".")
    p.add_argument("model", metavar="MODEL.ndm", help="model file")
    p.add_argument("data", metavar="DATA.csv", help="CSV with the model's input columns")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="write here (default: stdout)")
    p.set_defaults(func=run)


def _first_invalid(model, table, data):
    """UserError naming the first row/column that maps outside x > 0."""
    raw = table.values
    with np.errstate(invalid="ignore", over="ignore"):
        x = model.scale * (raw - model.offset)
    bad = ~(np.isfinite(x) & (x > 0))
    rows = np.flatnonzero(bad.any(axis=1))
    i = int(rows[0])
    j = int(np.flatnonzero(bad[i])[0])
    name = model.inputs[j]
    if model.offset[j] == 0 and model.scale[j] == 1:
        how = "%s = %r must be > 0" % (name, float(raw[i, j]))
    else:
        o = float(model.offset[j])
        how = ("%s = %r maps to %.6g (model input = %.6g * (%s %s %.6g) must be > 0)"
               % (name, float(raw[i, j]), float(x[i, j]), model.scale[j], name,
                  "-" if o >= 0 else "+", abs(o)))
    more = " (%d rows in all)" % rows.size if rows.size > 1 else ""
    return UserError("%s line %d (row %d): %s; no predictions written%s"
                     % (data, table.lines[i], i + 1, how, more))


def predict_table(model, table, data):
    """Predictions (rows, d_out) for a table of the model's inputs; UserError on a bad row."""
    if not np.all(model.valid_rows(table.values)):
        raise _first_invalid(model, table, data)
    with np.errstate(over="ignore", invalid="ignore"):
        y = model.predict(table.values)
    finite = np.all(np.isfinite(y), axis=1)
    if not np.all(finite):
        i = int(np.flatnonzero(~finite)[0])
        raise UserError("%s line %d (row %d): the prediction overflows (inputs far outside the "
                        "training range); no predictions written" % (data, table.lines[i], i + 1))
    return y


def run(args) -> int:
    model = read_model(args.model)
    if args.output is not None and args.output != "-":
        check_writable(args.output, "predictions")
    table = read_table(args.data, model.inputs)
    y = predict_table(model, table, args.data)
    write_csv(args.output, model.outputs, y)
    return 0
