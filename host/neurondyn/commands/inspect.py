"""``ndyn inspect``: a model file as a physicist reads it, or as JSON for programs.

The human view is the formula (one line per output), the channel map where it
is not the identity, and the numbers that matter on a board: K*, d_in, d_out,
file size.  ``--json`` prints one object with the schema of DESIGN.md §4
(``Model.to_dict()`` plus ``format_version`` and ``bytes``).
"""
from __future__ import annotations

import json

from .. import ndm
from ..data import model_bytes, read_model
from ..formula import channel_lines, formula_lines

HELP = "show a model: its formula, K*, sizes (or --json)"


def register(subparsers):
    p = subparsers.add_parser("inspect", help=HELP, description=HELP + ".")
    p.add_argument("model", metavar="MODEL.ndm", help="model file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    p.set_defaults(func=run)


def model_json(model, size: int) -> dict:
    """The §4 schema: format_version, d_in, d_out, inputs, outputs, k_star, quantized, bytes, bias, atoms."""
    doc = {"format_version": ndm.FORMAT_VERSION}
    doc.update(model.to_dict())
    doc["bytes"] = int(size)
    return doc


def human_lines(model, size: int) -> list:
    lines = list(formula_lines(model))
    maps = channel_lines(model)
    if maps:
        lines.append("where")
        lines.extend("  " + m for m in maps)
    lines.append("K* = %d atom%s, d_in = %d, d_out = %d, %d bytes, %s"
                 % (model.k_star, "" if model.k_star == 1 else "s", model.d_in, model.d_out,
                    size, "integer exponents (board-ready)" if model.quantized
                    else "real exponents (not quantized)"))
    return lines


def run(args) -> int:
    model = read_model(args.model)
    size = model_bytes(args.model)
    if args.json:
        print(json.dumps(model_json(model, size), indent=2))
    else:
        print("\n".join(human_lines(model, size)))
    return 0
