"""Schemathesis over the OpenAPI document, in-process: no 5xx, every answer as documented."""

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import login

# `make fuzz` raises this for a longer run; the test suite keeps it small and fixed.
EXAMPLES = int(os.environ.get("AUTHSVC_FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_api_answers_as_documented(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {login(app.test_client())}"}
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
    assert not failures, "\n".join(f"{label}: {what}" for label, what in failures.items())


def describe(error: BaseException) -> str:
    """One line per distinct problem: its title and first detail."""
    problems = error.exceptions if isinstance(error, BaseExceptionGroup) else [error]
    return "; ".join(" ".join(str(problem).split())[:300] for problem in problems)
