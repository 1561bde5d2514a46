"""``ndyn boards [--json]``: the board profiles as a table (or JSON)."""
import json

from .. import boards


def register(subparsers):
    p = subparsers.add_parser("boards", help="list the supported boards (profiles in boards/)")
    p.add_argument("--json", action="store_true", help="print the profiles as one JSON list")
    p.set_defaults(func=run)


def run(args) -> int:
    profiles = boards.all_profiles()
    if args.json:
        print(json.dumps([p.to_dict() for p in profiles.values()], indent=2))
    else:
        print(boards.table(profiles))
    return 0
