"""Rate limits: one count per instance, whatever the number of worker processes.

The counts live in the instance's own store (a SQLite file in the instance folder, shared by
every worker), or in the store ``AUTHSVC_RATELIMIT_STORAGE_URI`` names: ``redis://…`` to share
them across hosts, and then the instance's own store counts while Redis is unreachable.
``memory://`` counts in each process on its own (the tests' choice). Every count is taken
before the work it limits (fixed windows, one atomic increment each), so concurrent requests
never overshoot a limit.
"""

import math
from urllib.parse import urlsplit

from flask import Flask, current_app
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from . import drivers
from .clock import unix_time
from .errors import ApiError
from .limitfallback import FallbackStorage
from .limitstore import SQLiteStorage, instance_uri

EXTENSION = "authsvc.ratelimits"
SHARED_SCHEMES = ("redis", "rediss", "redis+unix", "valkey", "valkeys", "valkey+unix")
# A store across the network must not hold requests up for long when it stalls.
REDIS_TIMEOUTS = {"socket_connect_timeout": 1, "socket_timeout": 1}


def parse(limits: str) -> list[RateLimitItem]:
    """Flask-Limiter's syntax, such as ``30 per minute`` or ``5/second;100/hour``."""
    return list(parse_many(limits))


def limiter() -> FixedWindowRateLimiter:
    """The current app's limiter."""
    chosen: FixedWindowRateLimiter = current_app.extensions[EXTENSION]
    return chosen


def count(items: list[RateLimitItem], message: str, *identifiers: str) -> ApiError | None:
    """Count one hit against each limit; return the 429 to answer when one is over.

    The hit is taken whatever the answer, before the work it limits: concurrent callers each
    get a count of their own, so no more than the limit's worth ever pass.
    """
    for item in items:
        if not limiter().hit(item, *identifiers):
            return too_many(item, message, *identifiers)
    return None


def enforce(items: list[RateLimitItem], message: str, *identifiers: str) -> None:
    """Count one hit against each limit; raise the 429 when one is over."""
    error = count(items, message, *identifiers)
    if error is not None:
        raise error


def reserve(items: list[RateLimitItem], message: str, subjects: list[tuple[str, ...]]) -> None:
    """Take one hit of each limit for each subject, or none: when one is over, give back what
    this call took and raise the 429. The caller gives the hits back if the work turns out
    not to count (a login with the right password)."""
    taken: list[tuple[RateLimitItem, tuple[str, ...]]] = []
    for identifiers in subjects:
        for item in items:
            taken.append((item, identifiers))
            if not limiter().hit(item, *identifiers):
                for hit_item, hit_identifiers in taken:
                    give_back([hit_item], [hit_identifiers])
                raise too_many(item, message, *identifiers)


def give_back(items: list[RateLimitItem], subjects: list[tuple[str, ...]]) -> None:
    """Return the hits :func:`reserve` took."""
    for identifiers in subjects:
        for item in items:
            limiter().storage.incr(item.key_for(*identifiers), item.get_expiry(), amount=-1)


def too_many(item: RateLimitItem, message: str, *identifiers: str) -> ApiError:
    """The 429 for a limit that is over."""
    reset_at, _remaining = limiter().get_window_stats(item, *identifiers)
    return refusal(item.amount, reset_at, message)


def refusal(limit: int, reset_at: float, message: str) -> ApiError:
    """A 429 with ``Retry-After`` and the ``X-RateLimit-*`` headers: every limit answers so."""
    retry_after = max(1, math.ceil(reset_at - unix_time()))
    return ApiError(
        429,
        message,
        headers={
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(math.ceil(reset_at)),
        },
        retry_after=retry_after,
    )


def counts_per_process(app: Flask) -> bool:
    """Whether each worker process counts on its own (a configured ``memory://``)."""
    return str(app.config["RATELIMIT_STORAGE_URI"]).startswith("memory://")


def open_storage(app: Flask) -> Storage:
    """The configured store; a shared one falls back on the instance's own while it is down."""
    uri = app.config["RATELIMIT_STORAGE_URI"] or instance_uri(app.instance_path)
    options = dict(app.config.get("RATELIMIT_STORAGE_OPTIONS") or {})
    drivers.require_driver(uri)
    scheme = uri.partition("://")[0]
    if scheme not in SHARED_SCHEMES:
        storage: Storage = storage_from_string(uri, wrap_exceptions=True, **options)  # type: ignore[assignment]
        return storage
    shared = storage_from_string(uri, **{**REDIS_TIMEOUTS, **options})
    own = SQLiteStorage(instance_uri(app.instance_path))
    return FallbackStorage(shared, own, without_password(uri))  # type: ignore[arg-type]


def without_password(uri: str) -> str:
    """A store's URI as the log may show it."""
    parts = urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def init_app(app: Flask) -> None:
    """Open the app's store and limiter."""
    app.extensions[EXTENSION] = FixedWindowRateLimiter(open_storage(app))
