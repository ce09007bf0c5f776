"""Verifying every ledger stream stored in the configured database (``frostgate verify``
with no arguments). Filled in by the ledger work; see ``verify_database``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from frostgate.config import Settings

__all__ = ["DatabaseReport", "StreamReport", "verify_database"]


@dataclass(frozen=True, slots=True)
class StreamReport:
    stream: str
    ok: bool
    checked: int
    first_bad_index: int | None
    reason: str | None


@dataclass(slots=True)
class DatabaseReport:
    streams: list[StreamReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.streams)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "streams": [
                {
                    "stream": s.stream,
                    "ok": s.ok,
                    "checked": s.checked,
                    "first_bad_index": s.first_bad_index,
                    "reason": s.reason,
                }
                for s in self.streams
            ],
        }


def verify_database(settings: Settings) -> DatabaseReport:
    raise NotImplementedError("database verification lands with the anchoring work")
