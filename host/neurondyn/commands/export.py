"""``ndyn export``: write a model in another format (json now; tflite and c later).

Formats are a small registry mapping a name to a writer ``write(model, path)``
that writes ``path`` atomically.  JSON lives here; other writers live in their
own modules (``neurondyn.export_tflite``, ``neurondyn.export_c``), imported only
when asked for, so a missing optional dependency never breaks the other
formats.  A format whose module is absent is reported as "not available".
"""
from __future__ import annotations

import importlib
import json

from ..data import check_writable, model_bytes, read_model, write_output
from ..errors import UserError
from ..formula import formula_lines
from .inspect import model_json

HELP = "export a model (json, tflite, c)"


def export_json(model, path, size=None):
    """The §4 JSON schema plus the human formula; written atomically."""
    from .. import ndm
    doc = model_json(model, size if size is not None else len(ndm.dumps(model)))
    doc["formula"] = formula_lines(model)
    write_output(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"), "JSON export")


# name -> a writer callable, or the module path whose ``write(model, path)`` writes it
FORMATS = {
    "json": export_json,
    "tflite": "neurondyn.export_tflite",
    "c": "neurondyn.export_c",
}


def writer_for(name):
    """The writer of format ``name``; UserError if unknown or its module is not installed."""
    if name not in FORMATS:
        raise UserError("unknown format '%s' (choose from: %s)" % (name, ", ".join(sorted(FORMATS))))
    target = FORMATS[name]
    if callable(target):
        return target
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise UserError("format '%s' is not available (%s is missing)"
                        % (name, exc.name or target)) from None
    writer = getattr(module, "write", None)
    if writer is None:
        raise UserError("format '%s' is not available (%s has no write())" % (name, target))
    return writer


def register(subparsers):
    p = subparsers.add_parser("export", help=HELP, description=HELP + ".")
    p.add_argument("model", metavar="MODEL.ndm", help="model file")
    p.add_argument("--format", required=True, metavar="FORMAT",
                   help="one of: %s" % ", ".join(sorted(FORMATS)))
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    p.set_defaults(func=run)


def run(args) -> int:
    writer = writer_for(args.format)
    model = read_model(args.model)
    check_writable(args.output, "export")
    if writer is export_json:
        export_json(model, args.output, model_bytes(args.model))
    else:
        try:
            writer(model, args.output)
        except OSError as exc:
            raise UserError("%s: cannot write export (%s)"
                            % (args.output, exc.strerror or exc)) from None
        except ValueError as exc:      # the model does not fit the format
            raise UserError("cannot export %s as %s: %s" % (args.model, args.format, exc)) from None
    print("wrote %s (%s)" % (args.output, args.format))
    return 0
