"""`python -m entsso doctor [--inventory=FILE]`: what this admin box lacks for an inventory (entsso.tools.doctor).

The suite itself runs under pytest (README.md); this entry point holds the commands that are not a run.
"""
from __future__ import annotations

import sys

COMMANDS = {"doctor": "what this machine lacks to run the suite against an inventory, with the install commands"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print("usage: python -m entsso COMMAND [options]\n\ncommands:\n"
              + "\n".join(f"  {name:8} {text}" for name, text in COMMANDS.items())
              + "\n\nThe change itself runs under pytest: see README.md.",
              file=sys.stderr if args and args[0] not in ("-h", "--help") else sys.stdout)
        return 0 if args and args[0] in ("-h", "--help") else 2
    from entsso.tools import doctor

    return doctor.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
