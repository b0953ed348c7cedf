"""`python -m entsso.inventory FILE` (entsso.inventory.cli)."""
import sys

from entsso.inventory.cli import main

if __name__ == "__main__":  # python -m entsso.inventory FILE: check an inventory without running anything
    sys.exit(main())
