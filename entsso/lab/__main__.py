"""`python -m entsso.lab serve --scenario NAME|FILE --write-inventory PATH`: run the lab until stopped.

`--capture DIR` (instead of --scenario) serves a captured estate: a lab shaped like the estate a run's capture
(reports/<run>/capture) was written on, printing the captured tool texts (entsso.lab.replay, docs/lab.md).

Credentials come from the environment, as on a real estate: ENTSSO_WINRM_PASSWORD and
ENTSSO_SQL_PASSWORD (any values; the suite must be given the same ones).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m entsso.lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the lab and serve until stopped (Ctrl-C or SIGTERM)")
    serve.add_argument("--scenario", help="a bundled scenario name or a YAML file (default: default)")
    serve.add_argument("--capture", metavar="DIR", help="serve the estate this capture folder was written on "
                       "(reports/<run>/capture) instead of a scenario")
    serve.add_argument("--write-inventory", metavar="PATH", help="write the inventory for the suite here")
    serve.add_argument("--speed", type=float, help="estate seconds per real second (overrides the scenario)")
    serve.add_argument("--address-base", type=int, default=2, help="first host gets 127.0.0.<this>")
    args = parser.parse_args(argv)
    done = threading.Event()  # set by the parent watcher (another thread)
    # What the signal handler sets: a plain flag, never a lock. The handler runs in the main thread between
    # two bytecodes, possibly while that thread holds the Event's own lock (entering done.wait()): setting the
    # Event there deadlocks the lab, which then never stops (seen once under load in test_causes).
    signalled: list[int] = []

    def stopping() -> bool:
        return bool(signalled) or done.is_set()

    def on_signal(signum: int, frame: object) -> None:  # noqa: ARG001
        if signalled and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop whatever is still starting
        signalled.append(signum)

    # from here on Ctrl-C and SIGTERM end the lab cleanly (a lab still starting finishes, then stops)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    from entsso.lab.server import Lab, ScenarioError, load_scenario

    missing = [v for v in ("ENTSSO_WINRM_PASSWORD", "ENTSSO_SQL_PASSWORD") if not os.environ.get(v)]
    if missing:
        print(f"entsso-lab: set {' and '.join(missing)} in the environment first (any value; the suite "
              "reads the same variables).", file=sys.stderr)
        return 2
    replay = None
    if args.capture and args.scenario:
        print("entsso-lab: give --scenario or --capture, not both: a captured estate is its own scenario",
              file=sys.stderr)
        return 2
    try:
        if args.capture:
            from entsso.lab.replay import CaptureError, load_capture

            try:
                replay = load_capture(args.capture)
            except CaptureError as exc:
                print(f"entsso-lab: this capture cannot shape a lab: {exc}", file=sys.stderr)
                return 2
            scenario = replay.scenario
        else:
            scenario = load_scenario(args.scenario or "default")
        lab = Lab(scenario, winrm_password=os.environ["ENTSSO_WINRM_PASSWORD"],
                  sql_password=os.environ["ENTSSO_SQL_PASSWORD"], speed=args.speed,
                  address_base=args.address_base, replay=replay)
    except ScenarioError as exc:
        print(f"entsso-lab: {exc}", file=sys.stderr)
        return 2
    try:
        lab.start()
        if stopping():
            lab.stop()
            _say("entsso-lab: stopped before it was ready (Ctrl-C or SIGTERM); nothing is left running")
            return 0
        inventory = lab.write_inventory(args.write_inventory) if args.write_inventory else None
    except KeyboardInterrupt:
        lab.stop()
        raise
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
    while not stopping():
        time.sleep(0.1)  # a sleep is interrupted by the signal and re-checks the flag; it holds no lock
    lab.stop()
    _say("entsso-lab: stopped")
    return 0


def _say(line: str) -> None:
    """A last line on stderr; a parent that already closed the pipe is no reason for a traceback."""
    with contextlib.suppress(BrokenPipeError, ValueError, OSError):
        print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C twice, or before the lab had its handlers: no traceback, nothing running
        _say("entsso-lab: interrupted while starting; nothing is left running")
        sys.exit(130)
