"""The server's notion of "now": aware UTC datetimes (SQLModel stores them as UTC on every database)."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Return the current time as an aware datetime in UTC (microsecond precision)."""
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    """Return a datetime as UTC ISO 8601 with a 'Z' suffix (the records' `created_at` style)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
