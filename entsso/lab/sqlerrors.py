"""A SQL Server error as the lab's SQL engine raises it (sqlengine.py, tsqlrules.py) and its TDS endpoint
sends it (tds.py): number, state, severity (class) and SQL Server's text."""
from __future__ import annotations


class EngineError(Exception):
    """A SQL Server error: number, state, severity and the message text SQL Server sends."""

    def __init__(self, number: int, state: int, severity: int, message: str, *, status: int = 1) -> None:
        super().__init__(message)
        self.status = status  # the procedure's return status when a procedure raised it (an RPC's RETURNSTATUS)
        self.number = number
        self.state = state
        self.severity = severity
        self.message = message

    def __repr__(self) -> str:
        return f"EngineError({self.number}, {self.state}, {self.severity}, {self.message!r})"
