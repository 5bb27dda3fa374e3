"""A shared limit store (Redis) that, while unreachable, hands counting to the instance's own.

Limits keep holding through an outage, in one count per instance instead of one across
hosts; the log says so once when the store is lost and once when it is back. While it is
lost, one request every ``RETRY_SECONDS`` tries it again, so it is picked up again without a
restart, and no request waits on a store known to be down.
"""

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from limits.storage import Storage

from .clock import unix_time

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0
T = TypeVar("T")


class FallbackStorage(Storage):
    """Count in ``primary``; in ``fallback`` while ``primary`` fails."""

    def __init__(self, primary: Storage, fallback: Storage, name: str) -> None:
        super().__init__(wrap_exceptions=True)  # the fallback's failures: StorageError
        self.primary = primary
        self.fallback = fallback
        self.name = name  # how the log names the primary store (no password)
        self.lock = threading.Lock()
        self.lost_until: float | None = None  # while lost: when to try the primary again

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return self.fallback.base_exceptions

    def should_try_primary(self) -> bool:
        """Whether this call uses the primary; after a loss, one caller per interval tries."""
        with self.lock:
            if self.lost_until is None:
                return True
            now = unix_time()
            if now < self.lost_until:
                return False
            self.lost_until = now + RETRY_SECONDS  # the others keep to the fallback meanwhile
            return True

    def call(self, operation: Callable[[Storage], T]) -> T:
        if self.should_try_primary():
            try:
                result = operation(self.primary)
            except self.primary.base_exceptions as error:
                self.lost(error)
            else:
                self.reached()
                return result
        return operation(self.fallback)

    def lost(self, error: Exception) -> None:
        with self.lock:
            first = self.lost_until is None
            self.lost_until = unix_time() + RETRY_SECONDS
        if first:
            log.error(
                "rate-limit store %s unreachable (%s): counting in this instance's own store "
                "until it is back",
                self.name,
                error,
            )

    def reached(self) -> None:
        if self.lost_until is None:  # the usual case, without taking the lock
            return
        with self.lock:
            recovered, self.lost_until = self.lost_until is not None, None
        if recovered:
            log.warning("rate-limit store %s is back: counting there again", self.name)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.call(lambda store: store.incr(key, expiry, amount))

    def get(self, key: str) -> int:
        return self.call(lambda store: store.get(key))

    def get_expiry(self, key: str) -> float:
        return self.call(lambda store: store.get_expiry(key))

    def check(self) -> bool:
        return self.call(lambda store: store.check())

    def reset(self) -> int | None:
        return self.call(lambda store: store.reset())

    def clear(self, key: str) -> None:
        self.call(lambda store: store.clear(key))
