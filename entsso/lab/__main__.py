"""`python -m entsso.lab serve --scenario NAME|FILE --write-inventory PATH`: run the lab until stopped.

Credentials come from the environment, as on a real estate: ENTSSO_WINRM_PASSWORD and
ENTSSO_SQL_PASSWORD (any values; the suite must be given the same ones).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m entsso.lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the lab and serve until stopped (Ctrl-C or SIGTERM)")
    serve.add_argument("--scenario", default="default", help="a bundled scenario name or a YAML file")
    serve.add_argument("--write-inventory", metavar="PATH", help="write the inventory for the suite here")
    serve.add_argument("--speed", type=float, help="estate seconds per real second (overrides the scenario)")
    serve.add_argument("--address-base", type=int, default=2, help="first host gets 127.0.0.<this>")
    args = parser.parse_args(argv)

    from entsso.lab.server import Lab, ScenarioError, load_scenario

    missing = [v for v in ("ENTSSO_WINRM_PASSWORD", "ENTSSO_SQL_PASSWORD") if not os.environ.get(v)]
    if missing:
        print(f"entsso-lab: set {' and '.join(missing)} in the environment first (any value; the suite "
              "reads the same variables).", file=sys.stderr)
        return 2
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"entsso-lab: {exc}", file=sys.stderr)
        return 2
    lab = Lab(scenario, winrm_password=os.environ["ENTSSO_WINRM_PASSWORD"],
              sql_password=os.environ["ENTSSO_SQL_PASSWORD"], speed=args.speed,
              address_base=args.address_base)
    lab.start()
    inventory = lab.write_inventory(args.write_inventory) if args.write_inventory else None
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"entsso-lab ready control={lab.control_url} winrm_port={lab.winrm_port} "
          f"hosts={','.join(f'{h}={a}' for h, a in lab.addresses.items())}"
          + (f" inventory={inventory}" if inventory else ""), flush=True)
    parent = int(os.environ.get("ENTSSO_LAB_PARENT") or 0)
    if parent:  # started for one run or selftest: the lab ends with it, even if that process was killed
        def watch() -> None:
            while not done.wait(0.5):
                try:
                    os.kill(parent, 0)
                except ProcessLookupError:
                    done.set()
        threading.Thread(target=watch, daemon=True).start()
    done.wait()
    lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
