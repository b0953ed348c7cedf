"""The write side: the runbook's phases and their bookkeeping (run, journal, lock, window, plan, operator)."""
