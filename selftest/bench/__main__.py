"""`python -m selftest.bench`: the full benchmark (make bench)."""
import sys

from selftest.bench.run import main

sys.exit(main())
