"""``ndyn stream``: predictions from the model a board serves, for every row of a CSV.

Which columns are the inputs: the board knows only d_in, not names, so

* ``--inputs A,B,..`` names them (exactly d_in names), else
* ``--model MODEL.ndm`` takes the model's input names (and the output names for
  the header) and checks that the board serves that very model (same hash), else
* the first d_in columns of the CSV are the inputs, in order.

Rows travel batched (as many as the board's buffers hold), as float32 or, with
``--int16``, as int16 fixed point (half the bytes; per-channel scale chosen from
the file's range and sent once). The output CSV has the output columns plus an
``error`` column, in input order. A row the board refuses (a mapped input <= 0,
NaN or inf: empty or ``nan`` cells are passed on as NaN) gets empty output cells
and its error name; that is reported, not fatal. With ``--json`` the last stdout
line is one JSON object with the run's figures.

Resume (neurondyn.resume): if the board resets or the line drops mid-stream,
the command shakes hands again (reopening the port if it vanished) and goes on
where it stopped: every row is answered exactly once, in input order. If no
row is answered for ``--give-up`` seconds (default 20) the board is taken as
gone: the output is still written (atomically) with every input row in
place -- the answered ones with their predictions, the rest with empty cells
and the error ``not answered`` -- and the command exits 3 with one line.
"""
from __future__ import annotations

import csv
import io
import json
import sys
import time

import numpy as np

from .. import protocol as P
from ..data import check_writable, parse_names, read_model, read_table, write_output
from ..errors import DeviceError, UserError
from ..resume import GIVE_UP, ResumingStream, StreamInterrupted

NOT_ANSWERED = -1          # status of a row the board never answered (partial output)

HELP = "stream a CSV's rows to a board and collect its predictions"


def register(subparsers):
    p = subparsers.add_parser("stream", help=HELP, description=HELP + ".")
    p.add_argument("data", metavar="DATA.csv", help="CSV with a header row")
    p.add_argument("--port", required=True, help="serial port of the board (e.g. /dev/ttyACM0)")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="write predictions here (default: stdout)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    p.add_argument("--int16", action="store_true", help="send inputs as int16 fixed point")
    p.add_argument("--inputs", metavar="A,B,..", help="input column names (default: see --model)")
    p.add_argument("--model", metavar="MODEL.ndm",
                   help="take input/output names from this model (must be the one on the board)")
    p.add_argument("--baud", type=int, default=115200, help="serial speed (default 115200)")
    p.add_argument("--timeout", type=float, default=1.0, metavar="S",
                   help="longest wait for one reply before retransmitting (default 1; the wait "
                        "follows the measured round trip below that)")
    p.add_argument("--give-up", type=float, default=GIVE_UP, metavar="S",
                   help="seconds without an answered row before the board counts as gone "
                        "(default %g; resets and line drops shorter than this are resumed)"
                   % GIVE_UP)
    p.set_defaults(func=run)


def read_rows(path, columns, count):
    """Rows of ``columns`` (or the first ``count`` columns) as float64; empty/nan cells -> NaN,
    which the board answers with "bad input" for that row alone."""
    table = read_table(path, columns, first=count, missing_ok=True)
    return table.header, table.values


def format_predictions(outputs, preds, status) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(outputs) + ["error"])
    for p, s in zip(preds, status):
        if s == NOT_ANSWERED:
            w.writerow([""] * len(outputs) + ["not answered"])
        elif s:
            w.writerow([""] * len(outputs) + [P.ERROR_NAMES.get(int(s), "error %d" % s)])
        else:
            w.writerow([repr(float(v)) for v in p] + [""])
    return buf.getvalue()


def _delta(before, after, key, per):
    """(after - before)[key] / (after - before)[per], or None (no figures, or the board reset)."""
    if not before or not after:
        return None
    n = after[per] - before[per]
    if n <= 0 or after[key] < before[key]:
        return None
    return round((after[key] - before[key]) / n, 1)


def run(args) -> int:
    from tqdm import tqdm

    if not args.timeout > 0:
        raise UserError("--timeout must be a positive number of seconds, got %g" % args.timeout)
    if args.give_up <= 0:
        raise UserError("--give-up must be a positive number of seconds, got %g" % args.give_up)
    if args.output and args.output != "-":
        check_writable(args.output, "predictions")
    model = None
    model_blob = None
    if args.model:
        model = read_model(args.model)
        with open(args.model, "rb") as fh:
            model_blob = fh.read()
    inputs = parse_names(args.inputs) if args.inputs else None

    with ResumingStream(args.port, baud=args.baud, timeout=args.timeout, give_up=args.give_up,
                        int16=args.int16) as link:
        info = link.connect()
        if not info["model_loaded"]:
            raise DeviceError("the board at %s has no model: flash one with `ndyn flash`"
                              % args.port)
        d_in, d_out = info["d_in"], info["d_out"]
        if model is not None:
            from ..ndm import model_hash
            if model_hash(model_blob) != info["model_hash"]:
                raise UserError("the board at %s serves another model (hash %08x) than %s (%08x)"
                                % (args.port, info["model_hash"], args.model, model_hash(model_blob)))
            if inputs is None:
                inputs = list(model.inputs)
            outputs = list(model.outputs)
        else:
            outputs = ["y%d" % (i + 1) for i in range(d_out)] if d_out > 1 else ["y"]
        if inputs is not None and len(inputs) != d_in:
            raise UserError("the board's model takes %d inputs, --inputs names %d"
                            % (d_in, len(inputs)))
        columns, rows = read_rows(args.data, inputs, d_in)

        before = link.stats()
        rt0, wire0 = link.totals()
        t0 = time.perf_counter()
        interrupted = None
        with tqdm(total=len(rows), unit="sample", desc="stream", file=sys.stderr,
                  disable=None, leave=False) as bar:
            try:
                preds, status = link.run(rows, progress=bar.update)
            except StreamInterrupted as exc:
                interrupted = exc
                preds, status = exc.preds, exc.status.copy()
                status[~exc.answered] = NOT_ANSWERED
        seconds = time.perf_counter() - t0
        retransmits, wire = link.totals()
        retransmits, wire = retransmits - rt0, wire - wire0
        after = link.stats() if interrupted is None else None
        batch = link.batch_size() if link.board is not None else None

    text = format_predictions(outputs, preds, status)
    if args.output and args.output != "-":
        write_output(args.output, text.encode("utf-8"), "predictions")
    else:
        sys.stdout.write(text)
    answered = int(len(rows) if interrupted is None else interrupted.answered.sum())
    errors = int(np.count_nonzero(status[:answered]))
    if errors and interrupted is None:
        first = np.flatnonzero(status)[:5] + 1
        print("ndyn stream: %d of %d rows refused by the board (%s), first rows: %s"
              % (errors, len(rows), P.ERROR_NAMES.get(int(status[first[0] - 1]), "error"),
                 ", ".join(str(i) for i in first)), file=sys.stderr)
    summary = {
        "samples": int(len(rows)),
        "answered": answered,
        "errors": errors,
        "retransmits": int(retransmits),
        "resumes": int(link.resumes),
        "seconds": round(seconds, 4),
        "samples_per_s": round(answered / seconds, 2) if seconds > 0 else None,
        "device_us_per_inference": _delta(before, after, "infer_us", "samples"),
        "device_us_per_request": _delta(before, after, "request_us", "infer_requests"),
        "wire_bytes_per_sample": round(wire / len(rows), 2),
        "format": "int16" if args.int16 else "float32",
        "batch": batch,
        "inputs": columns,
        "board": info["board"],
        "heap_free": after["heap_free"] if after else None,
        "model_hash": "%08x" % info["model_hash"],
    }
    if args.json:
        print(json.dumps(summary), flush=True)
    if interrupted is not None:
        raise DeviceError(str(interrupted))
    if not args.json:
        print("ndyn stream: %d samples in %.2f s (%.1f samples/s), %d errors, %d retransmits%s"
              % (len(rows), seconds, summary["samples_per_s"] or 0, errors, retransmits,
                 ", %d resumes" % link.resumes if link.resumes else ""),
              file=sys.stderr)
    return 0
