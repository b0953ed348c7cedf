"""The estate did not do what a step asked, or answered in no known form: the domain's failures. Every one
derives from DomainError, so the runbook tells an estate's refusal (stop, say what to do) from a bug in the
suite (stop, and ask for it to be reported) by type alone — never by RuntimeError or LookupError, which any
bug raises too."""
from __future__ import annotations


class DomainError(Exception):
    """An estate failure a step names: what the estate did or said, and what to do."""
