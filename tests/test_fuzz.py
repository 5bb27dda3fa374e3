"""Schemathesis over the OpenAPI document: no 5xx, every answer as documented.

In-process, and against a live server (2 gunicorn workers) reading the document it serves,
with and without credentials: whatever answers, gunicorn's own included, must be documented.
"""

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import test_server
from tests.conftest import login
from tests.test_server import host_headers

server = test_server.server  # the live gunicorn fixture, shared

# `make fuzz` raises this for a longer run; the test suite keeps it small and fixed.
EXAMPLES = int(os.environ.get("AUTHSVC_FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def conformance_failures(schema: Any, headers: dict[str, str]) -> dict[str, str]:
    """Run every operation of ``schema`` with ``headers``; the problems found, by operation."""
    failures = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case):
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as error:  # try every operation, report all
            failures[operation.label] = describe(error)
    return failures


def describe(error: BaseException) -> str:
    """One line per distinct problem: its title and first detail."""
    problems = error.exceptions if isinstance(error, BaseExceptionGroup) else [error]
    return "; ".join(" ".join(str(problem).split())[:300] for problem in problems)


def report(failures: dict[str, str]) -> str:
    return "\n".join(f"{label}: {what}" for label, what in failures.items())


def test_the_api_answers_as_documented(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {login(app.test_client())}"}
    failures = conformance_failures(schema, headers)
    assert not failures, report(failures)


@pytest.mark.parametrize("credentials", ["host", "none"])
def test_the_served_api_answers_as_its_document_says(server, credentials):
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    headers = host_headers(server) if credentials == "host" else {}
    failures = conformance_failures(schema, headers)
    assert not failures, report(failures)
