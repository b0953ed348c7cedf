"""The inventory: one YAML file that describes an estate (docs/inventory.md), loaded and checked.

`load_inventory(path)` parses the file, validates it with pydantic models and the estate's own rules,
and reads the secrets from the environment variables the file names (or a prompt on a terminal).
Every mistake becomes one `InventoryError` whose message names the file, the field and the fix, so a
bad inventory is reported before anything connects.

Import from entsso.inventory itself. Its modules, each importing (at run time) only those after it: cli.py
(`python -m entsso.inventory FILE` and the outline), load.py (the YAML and its line numbers, check_inventory,
load_inventory), rules.py (the rules that span fields), schema.py (the models and each field's own checks),
secrets.py (Secrets, read from the environment or a prompt).
"""
from entsso.inventory.cli import main, outline
from entsso.inventory.load import check_inventory, load_inventory
from entsso.inventory.schema import (DEFAULT_CONTINUOUS_JOBS, DEFAULT_JOBS, DEFAULT_REMINDER, DRIVERS, Inventory,
                                     InventoryError)
from entsso.inventory.secrets import NeededVariable, Secrets, needed_variables

__all__ = ["InventoryError", "Inventory", "check_inventory", "load_inventory", "needed_variables", "outline",
           "DEFAULT_CONTINUOUS_JOBS", "DEFAULT_JOBS", "DEFAULT_REMINDER", "DRIVERS", "NeededVariable", "Secrets",
           "main"]
