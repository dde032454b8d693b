"""Tables the warehouse keeps beside the assets' own: what reconciliation remembered, which
tags changed, which pairs were first seen when. Each is written inside the transaction of the
asset (or check) that owns it, never on its own; declared once here with its columns, so the
``CREATE`` and the schema the UI shows come from the same place."""

from __future__ import annotations

from dataclasses import dataclass

# The project's own bookkeeping (reconciled days, tag changes), apart from the data schemas
# analysts browse.
STATE_SCHEMA = "_state"


@dataclass(frozen=True)
class SideTable:
    schema: str
    name: str
    description: str  # what one row is, and who writes it
    columns: dict[str, tuple[str, str]]  # column -> (DuckDB type, what it holds)
    primary_key: tuple[str, ...] = ()
    not_null: frozenset[str] = frozenset()

    @property
    def fq(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def create(self) -> str:
        cols = [
            f"{c} {t}{' NOT NULL' if c in self.not_null else ''}"
            for c, (t, _) in self.columns.items()
        ]
        if self.primary_key:
            cols.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.fq} ({', '.join(cols)})"
