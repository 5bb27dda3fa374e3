"""The one source of "now", so freezegun controls every timestamp."""

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (how the database stores it)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(moment: datetime | None) -> str | None:
    """Format a stored UTC datetime as ISO 8601 with a ``Z``."""
    if moment is None:
        return None
    return moment.replace(microsecond=0).isoformat() + "Z"


def epoch(moment: datetime) -> int:
    """Seconds since the Unix epoch of a stored (naive UTC) datetime."""
    return int(moment.replace(tzinfo=UTC).timestamp())


def unix_time() -> float:
    """Now in seconds since the Unix epoch, with fractions: :func:`utcnow` without building a
    datetime, for counting on the hot path (rate limits, usage)."""
    return time.time()
