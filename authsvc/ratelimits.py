"""Rate limits counted in Flask-Limiter's storage (memory, or Redis shared by workers)."""

from limits import RateLimitItem, parse_many

from .clock import epoch, utcnow
from .errors import ApiError
from .extensions import limiter


def enforce(items: list[RateLimitItem], message: str, *identifiers: str) -> None:
    """Count one hit against each limit; 429 with the SPEC §1 headers when one is over."""
    error = count(items, message, *identifiers)
    if error is not None:
        raise error


def count(items: list[RateLimitItem], message: str, *identifiers: str) -> ApiError | None:
    """Count one hit against each limit; return the 429 to answer when one is over."""
    for item in items:
        if not limiter.limiter.hit(item, *identifiers):
            return too_many(item, message, *identifiers)
    return None


def refuse_if_exhausted(items: list[RateLimitItem], message: str, *identifiers: str) -> None:
    """429 when a limit is used up already, without counting this request."""
    for item in items:
        if not limiter.limiter.test(item, *identifiers):
            raise too_many(item, message, *identifiers)


def hit(items: list[RateLimitItem], *identifiers: str) -> None:
    """Count one hit against each limit (the caller decided that this one counts)."""
    for item in items:
        limiter.limiter.hit(item, *identifiers)


def too_many(item: RateLimitItem, message: str, *identifiers: str) -> ApiError:
    """The 429 for a limit that is over, with ``Retry-After`` and the rate-limit headers."""
    reset_at, _remaining = limiter.limiter.get_window_stats(item, *identifiers)
    retry_after = max(1, int(reset_at) - epoch(utcnow()) + 1)
    return ApiError(
        429,
        message,
        headers={
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(reset_at)),
        },
        retry_after=retry_after,
    )


def parse(limits: str) -> list[RateLimitItem]:
    """Flask-Limiter's syntax, such as ``30 per minute`` or ``5/second;100/hour``."""
    return list(parse_many(limits))
