"""The one clock convention of BNNR artifacts: UTC, always timezone-aware."""

from __future__ import annotations

from datetime import datetime, timezone


def utc(moment: datetime | None = None) -> datetime:
    """``moment`` (default: now) as an aware UTC datetime; a naive ``moment`` is taken as UTC."""
    if moment is None:
        return datetime.now(timezone.utc)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
