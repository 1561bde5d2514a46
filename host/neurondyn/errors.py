"""Errors a user can cause, mapped to exit codes by the CLI (DESIGN.md §4).

Raise ``UserError`` for bad input (exit 2) and ``DeviceError`` for device or
link trouble (exit 3); the CLI prints one line on stderr, never a traceback.
"""


class NdynError(Exception):
    exit_code = 1


class UserError(NdynError):
    """Bad input: a path, a column, a value, a model file, a board name."""
    exit_code = 2


class DeviceError(NdynError):
    """Device or link trouble: no board, no answer, wrong protocol, board gone."""
    exit_code = 3
