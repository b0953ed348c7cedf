"""What an operation did, as a small frozen result: whether it changed the estate, why not when it did not,
and the estate's own answer as evidence for the journal. The step machinery reads `changed` from it
(entsso.change.steps): nothing searches a document for a `changed` key."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALREADY_SO = "the estate was already so"


@dataclass(frozen=True)
class Outcome:
    changed: bool
    evidence: Any = None  # the estate's answer (a script's document, the rows read): what the journal keeps
    noop_reason: str | None = None  # when nothing changed: why
    word: str | None = None  # the journal's outcome when neither "ok" nor "unchanged" says it (an exit code)

    @property
    def outcome(self) -> str:
        if self.word:
            return self.word
        return "ok" if self.changed else "unchanged"

    @classmethod
    def of_document(cls, doc: Mapping[str, Any], noop_reason: str = ALREADY_SO) -> Outcome:
        """A script's answer that says `changed` itself (Set-ClusterResourceState, Move-ClusterGroup, ...)."""
        changed = bool(doc.get("changed", True))
        return cls(changed, dict(doc), None if changed else noop_reason)

    @classmethod
    def of_documents(cls, docs: Sequence[Mapping[str, Any]], noop_reason: str = ALREADY_SO) -> Outcome:
        """One answer per subject (services, host instances): changed when any of them was."""
        changed = any(bool(d.get("changed", True)) for d in docs)
        return cls(changed, [dict(d) for d in docs], None if changed else (noop_reason if docs else "nothing asked"))
