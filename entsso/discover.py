"""`python -m entsso.discover`: the entry point operators type (the tool lives in entsso.tools.discover)."""
from entsso.tools.discover import main

if __name__ == "__main__":
    raise SystemExit(main())
