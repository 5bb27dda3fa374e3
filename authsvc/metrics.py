"""Prometheus metrics: counted in each worker process, summed over all of them at ``/metrics``.

Served by gunicorn, every worker writes its counts to files in one directory
(``PROMETHEUS_MULTIPROC_DIR``, by default ``metrics/`` in the instance folder, emptied when
the server starts) and a scrape reads them all: the official client's multiprocess mode. In
a process that is no server (tests), the counts stay in memory. No label takes a value from
a request: outcomes, results and endpoint groups are fixed lists.
"""

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import func, or_, select

from .clock import utcnow
from .extensions import db
from .models import ApiKey

DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
STARTED = "authsvc.started"  # the request's start, in the WSGI environ
# A key check takes well under a millisecond; pairing and pages take longer.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
PAIRING_EVENTS = {
    "pairing.succeeded": "succeeded",
    "pairing.failed": "failed",
    "challenge.denied": "denied",
}


class Instruments:
    """This process's metric objects, made once the mode (files or memory) is decided."""

    def __init__(self) -> None:
        # Imported here: the client picks its mode from the environment when first imported.
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = DIRECTORY in os.environ
        self.registry = None if self.multiprocess else CollectorRegistry()
        self.verifications = Counter(
            "authsvc_key_verifications",
            "Key checks by outcome (the verification codes, lower case).",
            ["outcome"],
            registry=self.registry,
        )
        self.by_outcome: dict[str, Any] = {}  # labelled children, looked up once each
        self.pairings = Counter(
            "authsvc_pairings",
            "Pairing attempts by result.",
            ["result"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "authsvc_request_duration_seconds",
            "Time to answer a request, by endpoint group.",
            ["endpoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )


made: Instruments | None = None
making = threading.Lock()


def instruments() -> Instruments:
    global made
    if made is None:
        with making:
            if made is None:
                made = Instruments()
    return made


def count_verification(outcome: str) -> None:
    counters = instruments()
    child = counters.by_outcome.get(outcome)
    if child is None:
        child = counters.by_outcome[outcome] = counters.verifications.labels(outcome)
    child.inc()


def count_pairing(result: str) -> None:
    instruments().pairings.labels(result).inc()


def count_audit_event(event_type: str) -> None:
    """Pairing results are told by their audit events."""
    result = PAIRING_EVENTS.get(event_type)
    if result is not None:
        count_pairing(result)


def request_seconds() -> float | None:
    """How long the current request has taken so far."""
    started = request.environ.get(STARTED)
    return None if started is None else time.perf_counter() - started


def endpoint_group() -> str:
    """The blueprint that answered (a fixed list), or ``other``."""
    return request.blueprint or "other"


def observe(response: Response) -> Response:
    seconds = request_seconds()
    if seconds is not None:
        instruments().durations.labels(endpoint_group()).observe(seconds)
    return response


def stamped(wsgi_app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Note when each request arrives, before any hook (the request gate included) runs."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[STARTED] = time.perf_counter()
        return wsgi_app(environ, start_response)

    return app


class ActiveKeys:
    """``authsvc_keys_active``, counted in the database at each scrape."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        now = utcnow()
        active = db.session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(
                ApiKey.enabled.is_(True),
                or_(ApiKey.revoked_at.is_(None), ApiKey.revoked_at > now),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
        )
        yield GaugeMetricFamily("authsvc_keys_active", "Keys that are usable now.", active or 0)


def exposition() -> tuple[bytes, str]:
    """Every worker's metrics and the active keys, in Prometheus's text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    current = instruments()
    registry = current.registry or CollectorRegistry()
    if current.multiprocess:
        MultiProcessCollector(registry)
    collectors = [ActiveKeys()]
    for collector in collectors:
        registry.register(collector)
    try:
        return generate_latest(registry), CONTENT_TYPE_LATEST
    finally:
        for collector in collectors:
            registry.unregister(collector)


def prepare_directory(app: Flask) -> None:
    """At server start, before workers fork: an empty directory for this run's metric files."""
    directory = os.environ.setdefault(DIRECTORY, os.path.join(app.instance_path, "metrics"))
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o700)


def init_app(app: Flask) -> None:
    """Time every request."""
    app.wsgi_app = stamped(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(observe)
