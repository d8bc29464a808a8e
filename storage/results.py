"""Reading what a statement returned, typed: SQLAlchemy types an inserted row's key and a
scalar as optional, though an INSERT always has a key and COUNT(*) always a value."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import CursorResult

__all__ = ["inserted_id"]


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT made."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the statement inserted no row")
    return int(key[0])
