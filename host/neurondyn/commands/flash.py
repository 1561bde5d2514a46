"""``ndyn flash MODEL.ndm --board B --port PORT|auto [--hex OUT.hex]``.

Checks that firmware + model fit the board, then writes a micro:bit image
and/or installs on the board at PORT (protocol upload when our firmware
answers; otherwise firmware + model over the raw REPL, then a reset).
"""
import json
import sys

from .. import boards, deploy
from ..errors import UserError


def register(subparsers):
    p = subparsers.add_parser("flash", help="install firmware + model on a board (or write a micro:bit .hex)")
    p.add_argument("model", metavar="MODEL.ndm")
    p.add_argument("--board", required=True, help="board profile name (see `ndyn boards`)")
    p.add_argument("--port", help="serial port, or 'auto' to find the board by USB VID:PID")
    p.add_argument("--hex", metavar="OUT.hex", help="write a complete micro:bit image for drag-and-drop")
    p.add_argument("--json", action="store_true", help="print what was done as one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    profile = boards.get_profile(args.board)
    if not args.port and not args.hex:
        raise UserError("say where to flash: --port PORT|auto and/or --hex OUT.hex")
    ndm_bytes = deploy.read_model_bytes(args.model)

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    result = deploy.flash(ndm_bytes, profile, port=args.port, hex_out=args.hex, progress=progress)
    if args.json:
        print(json.dumps(result))
    else:
        fit = result["fit"]
        print("fit %s: firmware ~%d B + model ~%d B of heap (%d B left, %d B reserve); "
              "files %d of %d B" % (profile.name, fit["firmware_heap"], fit["model_heap"],
                                    fit["heap_free_after"], fit["heap_reserve"],
                                    fit["fs_needed"], fit["fs_bytes"]))
        if "hex" in result:
            print("image: %s" % result["hex"])
        if "port" in result:
            print("flashed %s via %s; model hash %08x" % (result["port"], result["method"],
                                                          result["model_hash"]))
    return 0
