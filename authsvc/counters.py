"""Named counters that concurrent requests change atomically (one conditional UPDATE each)."""

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import Counter

# Wrong codes compared since pairing was last turned on or last succeeded (SPEC §4).
PAIRING_FAILURES = "pairing_failures"


def ensure(name: str) -> None:
    """Create the counter at 0 unless it exists (another worker may create it at once)."""
    if db.session.get(Counter, name) is not None:
        return
    try:
        with db.session.begin_nested():
            db.session.add(Counter(name=name, value=0))
    except IntegrityError:
        pass  # created meanwhile by another request


def reserve(name: str, limit: int) -> int | None:
    """Add one unless the counter has reached ``limit``, in the current transaction (the
    caller commits, or rolls back to give the unit back); return the new value or None.

    The check and the increment are one statement, so concurrent callers never overdraw;
    the counter's row stays locked until the transaction ends.
    """
    ensure(name)
    new_value = db.session.scalar(
        update(Counter)
        .where(Counter.name == name, Counter.value < limit)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
        .execution_options(synchronize_session=False)
    )
    return new_value


def reset(name: str) -> None:
    """Set the counter back to 0 within the current transaction (the caller commits)."""
    ensure(name)
    db.session.execute(
        update(Counter)
        .where(Counter.name == name)
        .values(value=0)
        .execution_options(synchronize_session=False)
    )


def release(name: str) -> None:
    """Give back one reserved unit (the reservation turned out not to count); commit."""
    db.session.execute(
        update(Counter)
        .where(Counter.name == name, Counter.value > 0)
        .values(value=Counter.value - 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
