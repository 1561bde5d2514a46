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
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import time

import numpy as np

from .. import protocol as P
from ..data import check_writable, parse_names, read_model, write_output
from ..errors import UserError

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
                   help="seconds to wait for one reply before retransmitting (default 1)")
    p.set_defaults(func=run)


def read_rows(path, columns, count):
    """Rows of ``columns`` (or the first ``count`` columns) as float64; empty/nan cells -> NaN."""
    try:
        fh = open(path, "r", encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UserError("%s: cannot read (%s)" % (path, exc.strerror or exc)) from None
    with fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = None
        try:
            for fields in reader:
                if any(f.strip() for f in fields):
                    header = [f.strip() for f in fields]
                    break
            if header is None:
                raise UserError("%s: file is empty (expected a header row and data rows)" % path)
            if columns is None:
                if len(header) < count:
                    raise UserError("%s: the board's model takes %d inputs but the file has %d "
                                    "columns" % (path, count, len(header)))
                columns = header[:count]
            index = []
            for name in columns:
                if name not in header:
                    raise UserError("%s: column '%s' not found (columns are: %s)"
                                    % (path, name, ", ".join(header)[:200]))
                index.append(header.index(name))
            rows = []
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise UserError("%s line %d: %d fields, but the header has %d"
                                    % (path, reader.line_num, len(fields), len(header)))
                row = []
                for n, i in enumerate(index):
                    cell = fields[i].strip()
                    try:
                        row.append(float(cell) if cell else math.nan)
                    except ValueError:
                        raise UserError("%s line %d, column '%s': '%s' is not a number"
                                        % (path, reader.line_num, columns[n], cell[:30])) from None
                rows.append(row)
        except UnicodeDecodeError:
            raise UserError("%s: not a UTF-8 text file" % path) from None
        except csv.Error as exc:
            raise UserError("%s line %d: malformed CSV (%s)" % (path, reader.line_num, exc)) from None
    if not rows:
        raise UserError("%s: has a header but no data rows" % path)
    return list(columns), np.asarray(rows, dtype=np.float64).reshape(len(rows), len(columns))


def format_predictions(outputs, preds, status) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(outputs) + ["error"])
    for p, s in zip(preds, status):
        if s:
            w.writerow([""] * len(outputs) + [P.ERROR_NAMES.get(int(s), "error %d" % s)])
        else:
            w.writerow([repr(float(v)) for v in p] + [""])
    return buf.getvalue()


def run(args) -> int:
    from ..link import Board
    from tqdm import tqdm

    if args.output and args.output != "-":
        check_writable(args.output, "predictions")
    model = None
    model_blob = None
    if args.model:
        model = read_model(args.model)
        with open(args.model, "rb") as fh:
            model_blob = fh.read()
    inputs = parse_names(args.inputs) if args.inputs else None

    with Board.open(args.port, baud=args.baud, timeout=args.timeout) as board:
        info = board.info
        if not info["model_loaded"]:
            raise UserError("the board at %s has no model: flash one with `ndyn flash`" % args.port)
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

        before = board.stats()
        out0, in0 = board.t.bytes_out, board.t.bytes_in
        rt0 = board.retransmits
        t0 = time.perf_counter()
        with tqdm(total=len(rows), unit="sample", desc="stream", file=sys.stderr,
                  disable=None, leave=False) as bar:
            preds, status = board.infer(rows, int16=args.int16, progress=bar.update)
        seconds = time.perf_counter() - t0
        wire = (board.t.bytes_out - out0) + (board.t.bytes_in - in0)
        retransmits = board.retransmits - rt0
        after = board.stats()

    text = format_predictions(outputs, preds, status)
    if args.output and args.output != "-":
        write_output(args.output, text.encode("utf-8"), "predictions")
    else:
        sys.stdout.write(text)
    errors = int(np.count_nonzero(status))
    if errors:
        first = np.flatnonzero(status)[:5] + 1
        print("ndyn stream: %d of %d rows refused by the board (%s), first rows: %s"
              % (errors, len(rows), P.ERROR_NAMES.get(int(status[first[0] - 1]), "error"),
                 ", ".join(str(i) for i in first)), file=sys.stderr)
    samples_delta = after["samples"] - before["samples"]
    summary = {
        "samples": int(len(rows)),
        "answered": int(len(rows)),
        "errors": errors,
        "retransmits": int(retransmits),
        "seconds": round(seconds, 4),
        "samples_per_s": round(len(rows) / seconds, 2) if seconds > 0 else None,
        "device_us_per_inference": (round((after["infer_us"] - before["infer_us"]) / samples_delta, 1)
                                    if samples_delta else None),
        "device_us_per_request": (round((after["request_us"] - before["request_us"])
                                        / (after["infer_requests"] - before["infer_requests"]), 1)
                                  if after["infer_requests"] > before["infer_requests"] else None),
        "wire_bytes_per_sample": round(wire / len(rows), 2),
        "format": "int16" if args.int16 else "float32",
        "batch": board.batch_size(args.int16),
        "inputs": columns,
        "board": info["board"],
        "heap_free": after["heap_free"],
        "model_hash": "%08x" % info["model_hash"],
    }
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print("ndyn stream: %d samples in %.2f s (%.1f samples/s), %d errors, %d retransmits"
              % (len(rows), seconds, summary["samples_per_s"] or 0, errors, retransmits),
              file=sys.stderr)
    return 0
