"""Reading the user's files (CSV data, model files) and writing results, with one-line errors.

Every problem a user can cause with a file -- missing, empty, a header without
rows, a missing column, a cell that is not a number or not finite, too few rows,
a corrupted model, an output folder that does not exist -- becomes a
``UserError`` whose message names the file and, where it applies, the line, the
data row and the column.  The CLI prints that one line and exits 2, so callers
never need their own checks.

Line numbers are the file's physical lines (the header is line 1); "row" counts
data rows from 1.  Blank lines are skipped (editors and spreadsheets leave
them at the end of files).  Only the requested columns are parsed, so other
columns may hold anything (timestamps, comments).
"""
from __future__ import annotations

import csv
import io
import math
import os
import sys
from typing import NamedTuple

import numpy as np

from .errors import UserError
from .fsutil import atomic_write_bytes

# Fewer samples than this cannot support an exact least-squares refit plus an
# energy comparison between candidate structures: annealing refuses them.
MIN_TRAIN_ROWS = 10


class Table(NamedTuple):
    """Columns read from a CSV file; ``lines[i]`` is the file line of data row ``i``."""
    header: list
    values: np.ndarray     # float64, shape (rows, len(header))
    lines: list


def _name(path) -> str:
    return os.fspath(path)


def _open_text(path):
    """Open for reading or raise one clear UserError."""
    p = _name(path)
    try:
        return open(p, "r", encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise UserError("%s: no such file" % p) from None
    except IsADirectoryError:
        raise UserError("%s: is a directory, not a CSV file" % p) from None
    except PermissionError:
        raise UserError("%s: permission denied" % p) from None
    except OSError as exc:
        raise UserError("%s: cannot read (%s)" % (p, exc.strerror or exc)) from None


def _parse_cell(text, p, line, row, column, missing_ok=False):
    cell = text.strip()
    if not cell:
        if missing_ok:
            return math.nan
        raise UserError("%s line %d (row %d), column '%s': empty cell" % (p, line, row, column))
    try:
        value = float(cell)
    except ValueError:
        raise UserError("%s line %d (row %d), column '%s': '%s' is not a number"
                        % (p, line, row, column, _short(cell))) from None
    if not math.isfinite(value) and not missing_ok:
        raise UserError("%s line %d (row %d), column '%s': '%s' is not a finite number"
                        % (p, line, row, column, _short(cell)))
    return value


def _short(text, limit=30):
    return text if len(text) <= limit else text[:limit] + "..."


def read_table(path, columns=None, min_rows=1, first=None, missing_ok=False) -> Table:
    """Read ``columns`` of a CSV file with a header row, validating every cell.

    ``columns`` None means all of them, or the first ``first`` (a model's inputs, in
    order) when that is given.
    ``missing_ok``: an empty, nan or inf cell is read as it stands (NaN for empty)
    instead of refused -- for data a board judges row by row (``ndyn stream``
    answers such a row with "bad input" and goes on), not for fitting.
    """
    p = _name(path)
    with _open_text(path) as fh:
        try:
            reader = csv.reader(fh, skipinitialspace=True)
            header = None
            for fields in reader:
                if any(f.strip() for f in fields):
                    header = [f.strip() for f in fields]
                    break
            if header is None:
                raise UserError("%s: file is empty (expected a header row and data rows)" % p)
            _check_header(header, p)
            if columns is None and first is not None:
                if len(header) < first:
                    raise UserError("%s: the model takes %d inputs but the file has %d columns"
                                    % (p, first, len(header)))
                columns = header[:first]
            wanted = list(header) if columns is None else list(columns)
            index = []
            for name in wanted:
                if name not in header:
                    raise UserError("%s: column '%s' not found (columns are: %s)"
                                    % (p, name, _short(", ".join(header), 200)))
                index.append(header.index(name))
            rows, lines = [], []
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue
                line, row = reader.line_num, len(rows) + 1
                if len(fields) != len(header):
                    raise UserError("%s line %d (row %d): %d fields, but the header has %d"
                                    % (p, line, row, len(fields), len(header)))
                rows.append([_parse_cell(fields[i], p, line, row, wanted[n], missing_ok)
                             for n, i in enumerate(index)])
                lines.append(line)
        except UnicodeDecodeError:
            raise UserError("%s: not a UTF-8 text file" % p) from None
        except csv.Error as exc:
            raise UserError("%s line %d: malformed CSV (%s)" % (p, reader.line_num, exc)) from None
    if not rows:
        raise UserError("%s: has a header but no data rows" % p)
    if len(rows) < min_rows:
        raise UserError("%s: only %d data row%s; at least %d are needed"
                        % (p, len(rows), "" if len(rows) == 1 else "s", min_rows))
    values = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(wanted))
    return Table(wanted, values, lines)


def _check_header(header, p):
    seen = set()
    for i, name in enumerate(header):
        if not name:
            raise UserError("%s: header column %d has no name" % (p, i + 1))
        if name in seen:
            raise UserError("%s: column '%s' appears twice in the header" % (p, name))
        seen.add(name)


def load_csv(path, columns=None, min_rows=1):
    """Return ``(header, values)``: the requested columns (all when None) as float64.

    Raises UserError with one line naming the file, line, row and column of the
    first problem found.
    """
    table = read_table(path, columns, min_rows)
    return table.header, table.values


def parse_names(text, what="--inputs") -> list:
    """Split a comma-separated list of column names; UserError if empty or repeated."""
    names = [n.strip() for n in (text or "").split(",")]
    if not names or not all(names):
        raise UserError("%s needs a comma-separated list of column names, got '%s'"
                        % (what, text or ""))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError("%s names column '%s' more than once" % (what, dupes[0]))
    return names


def select(path, inputs, outputs, min_rows=1):
    """Read input and output columns by name: ``(X, Y)`` float64 arrays, rows aligned."""
    inputs, outputs = list(inputs), list(outputs)
    both = sorted(set(inputs) & set(outputs))
    if both:
        raise UserError("column '%s' is given both as an input and as an output" % both[0])
    _, values = load_csv(path, inputs + outputs, min_rows)
    return values[:, :len(inputs)], values[:, len(inputs):]


def format_csv(header, rows) -> str:
    """CSV text with full float precision (``repr``: the shortest exact round trip)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(header))
    for row in rows:
        writer.writerow([repr(float(v)) for v in row])
    return buf.getvalue()


def write_csv(path, header, rows) -> None:
    """Write CSV to ``path`` atomically, or to stdout when ``path`` is None or '-'."""
    text = format_csv(header, rows)
    if path is None or _name(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_output(path, text.encode("utf-8"))


def check_writable(path, what="output") -> None:
    """Fail early (before long work) if ``path`` cannot be created: one UserError line."""
    p = _name(path)
    folder = os.path.dirname(os.path.abspath(p)) or "."
    if os.path.isdir(p):
        raise UserError("%s: %s is a directory" % (p, what))
    if not os.path.isdir(folder):
        raise UserError("%s: cannot write %s: folder %s does not exist" % (p, what, folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError("%s: cannot write %s: folder %s is not writable" % (p, what, folder))


def write_output(path, data: bytes, what="output") -> None:
    """Write bytes atomically (whole file or nothing); OS failures become one UserError line."""
    p = _name(path)
    check_writable(p, what)
    try:
        atomic_write_bytes(p, data)
    except OSError as exc:
        raise UserError("%s: cannot write %s (%s)" % (p, what, exc.strerror or exc)) from None


def read_model(path):
    """Read a .ndm model file; a missing or invalid file is one UserError line."""
    from . import ndm
    p = _name(path)
    try:
        with open(p, "rb") as fh:
            blob = fh.read()
    except FileNotFoundError:
        raise UserError("%s: no such file" % p) from None
    except IsADirectoryError:
        raise UserError("%s: is a directory, not a model file" % p) from None
    except OSError as exc:
        raise UserError("%s: cannot read (%s)" % (p, exc.strerror or exc)) from None
    try:
        return ndm.loads(blob)
    except ndm.NdmError as exc:
        raise UserError("%s: %s" % (p, exc)) from None


def model_bytes(path) -> int:
    """Size of a model file in bytes (after ``read_model`` succeeded)."""
    return os.path.getsize(_name(path))
