"""``ndyn pull``: the model a board serves now (after retraining), as a .ndm file.

The bytes are the board's own (names section included), CRC-32 checked and
parsed before anything is written; the file is written atomically, so it is
either the whole model or untouched. Every host command reads it.
"""
from __future__ import annotations

import sys

from .. import feeling, ndm
from ..data import check_writable, write_output
from ..errors import DeviceError

HELP = "copy the model a board serves now into a .ndm file"


def register(subparsers):
    p = subparsers.add_parser("pull", help=HELP, description=HELP + ".")
    p.add_argument("--port", required=True, help="serial port of the board")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.ndm", help="where to write it")
    p.add_argument("--baud", type=int, default=115200, help="serial speed (default 115200)")
    p.add_argument("--timeout", type=float, default=1.0, metavar="S",
                   help="seconds to wait for one reply before retransmitting (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..link import Board
    check_writable(args.output, "model")
    with Board.open(args.port, baud=args.baud, timeout=args.timeout) as board:
        if not board.info["model_loaded"]:
            raise DeviceError("the board at %s has no model to pull" % args.port)
        data = feeling.pull(board)
    write_output(args.output, data, "model")
    model = ndm.loads(data)
    print("ndyn pull: %s: %d -> %d model, K = %d, %d bytes, hash %08x"
          % (args.output, model.d_in, model.d_out, model.k_star, len(data), ndm.model_hash(data)),
          file=sys.stderr)
    return 0
