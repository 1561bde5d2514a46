"""The ``ndyn`` command line: one module per command under ``neurondyn.commands``.

Each command module defines ``register(subparsers)`` which adds its parser and
sets ``func`` to a callable taking the parsed args and returning an exit code.
Errors the user can cause surface as one line on stderr with exit 2 (input) or
3 (device/link); set NDYN_DEBUG=1 to see a traceback for anything else.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import NdynError

# Order here is the order of `ndyn --help`.
COMMANDS = [
    "anneal", "inspect", "predict", "export", "boards", "emulate", "flash",
    "stream", "retrain", "pull", "bench", "demo", "sweep",
]


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (its default prints usage too)."""

    def error(self, message):
        self.exit(2, "ndyn: error: %s\n" % message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ndyn", description="Grow power-law models by annealing a neuron pool; "
                                              "serve and retrain them on microcontrollers.")
    parser.add_argument("--version", action="version", version="ndyn %s" % __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module("neurondyn.commands.%s" % name)
        except ModuleNotFoundError as exc:
            if exc.name == "neurondyn.commands.%s" % name:
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        return int(code or 0)
    except NdynError as exc:
        print("ndyn: error: %s" % exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ndyn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug of ours: still one line unless debugging
        if os.environ.get("NDYN_DEBUG"):
            raise
        print("ndyn: internal error: %s: %s (set NDYN_DEBUG=1 for a traceback)"
              % (type(exc).__name__, exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
