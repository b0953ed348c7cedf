"""The suite's performance benchmark (issue 8): the gate and the full run on lab scenarios with a fixed
latency per WinRM call, measured per phase against the lower bound the estate itself sets.
`python -m selftest.bench` (make bench) is the full form; test_bench.py runs the short form in CI."""
