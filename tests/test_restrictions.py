"""Pure checks behind key restrictions (authsvc/restrictions.py)."""

import pytest

from authsvc import restrictions


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/v1/spaces", "/v1/spaces"),
        ("/v1/spaces/", "/v1/spaces"),
        ("//v1//spaces///", "/v1/spaces"),
        ("/v1/spaces/../admin", "/v1/admin"),
        ("/v1/spaces/%2e%2e/admin", "/v1/admin"),
        ("/v1/spaces/%2E%2E/admin", "/v1/admin"),
        ("/v1/spaces/%252e%252e/admin", "/v1/admin"),
        ("/v1/spaces/./x", "/v1/spaces/x"),
        ("/v1\\spaces", "/v1/spaces"),
        ("/../../etc", "/etc"),
        ("/v1/spaces?x=1", "/v1/spaces"),
        ("", "/"),
        ("/", "/"),
        ("v1/spaces", "/v1/spaces"),
        ("/v1/%2fspaces", "/v1/spaces"),
        ("//evil/v1/spaces", "/evil/v1/spaces"),
        ("//v1/spaces#frag", "/v1/spaces"),
        ("http://example.com/v1/spaces?x", "/v1/spaces"),
        ("https://example.com", "/"),
    ],
)
def test_normalize_path(raw, expected):
    assert restrictions.normalize_path(raw) == expected


@pytest.mark.parametrize(
    ("rules", "method", "path", "allowed"),
    [
        (["/v1/spaces"], "GET", "/v1/spaces", True),
        (["/v1/spaces"], "GET", "/v1/spaces/", True),
        (["/v1/spaces"], "POST", "/v1/spaces/abc/objects", True),
        (["/v1/spaces"], "GET", "/v1/spacesx", False),
        (["/v1/spaces"], "GET", "/v1/space", False),
        (["/v1/spaces"], "GET", "/v1/auth", False),
        (["/v1/spaces"], "GET", "/v1/spaces/../admin", False),
        (["/v1/spaces"], "GET", "/v1/spaces/%2e%2e/admin/users", False),
        (["/v1/spaces"], "GET", "//v1//spaces", True),
        (["/v1/spaces"], "GET", "//host/v1/spaces", False),
        (["/v1/spaces/"], "GET", "/v1/spaces", True),
        (["GET /v1/spaces"], "GET", "/v1/spaces/x", True),
        (["GET /v1/spaces"], "get", "/v1/spaces", True),
        (["get /v1/spaces"], "GET", "/v1/spaces", True),
        (["GET /v1/spaces"], "POST", "/v1/spaces", False),
        (["POST /v1/spaces", "GET /v1/auth"], "GET", "/v1/auth/whoami", True),
        ([], "GET", "/v1/spaces", False),
        (["/"], "DELETE", "/anything/at/all", True),
        ([" /v1/spaces "], "GET", "/v1/spaces", True),
    ],
)
def test_endpoint_allowed(rules, method, path, allowed):
    assert restrictions.endpoint_allowed(rules, method, path) is allowed


@pytest.mark.parametrize(
    ("rule", "method", "path"),
    [("GET /v1/spaces", "GET", "/v1/spaces"), ("/v1/spaces", None, "/v1/spaces")],
)
def test_parse_rule(rule, method, path):
    assert restrictions.parse_rule(rule) == (method, path)


@pytest.mark.parametrize(
    ("rule", "valid"),
    [
        ("/v1/spaces", True),
        ("GET /v1/spaces", True),
        ("post /v1/auth", True),
        ("v1/spaces", False),
        ("GET v1/spaces", False),
        ("", False),
        ("/v1/spa ces", False),
        ("FETCH /v1/spaces", False),
    ],
)
def test_is_valid_rule(rule, valid):
    assert restrictions.is_valid_rule(rule) is valid


@pytest.mark.parametrize(
    ("entry", "valid"),
    [
        ("10.0.0.1", True),
        ("10.0.0.0/8", True),
        ("10.0.0.1/8", True),
        ("::1", True),
        ("2001:db8::/32", True),
        (" 192.168.1.0/24 ", True),
        ("10.0.0.256", False),
        ("example.com", False),
        ("", False),
        ("10.0.0.0/33", False),
    ],
)
def test_is_valid_network(entry, valid):
    assert restrictions.is_valid_network(entry) is valid


@pytest.mark.parametrize(
    ("networks", "address", "allowed"),
    [
        (["10.0.0.0/8"], "10.1.2.3", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["::1"], "::1", True),
        (["10.0.0.0/8"], "::1", False),
        (["2001:db8::/32"], "2001:db8::42", True),
        ([], "10.0.0.1", False),
        (["10.0.0.0/8"], None, False),
        (["10.0.0.0/8"], "", False),
        (["10.0.0.0/8"], "not-an-ip", False),
    ],
)
def test_ip_allowed(networks, address, allowed):
    assert restrictions.ip_allowed(networks, address) is allowed


@pytest.mark.parametrize(
    ("path", "organization"),
    [
        ("/v1/spaces/org_1/objects", "org_1"),
        ("/v1/spaces/org_1", "org_1"),
        ("/v1/spaces/org_1/", "org_1"),
        ("/v1/spaces", None),
        ("/v1/spaces/", None),
        ("/v1/auth", None),
        ("/v2/spaces/org_1", None),
        ("/v1/spaces/org_1/../org_2/objects", "org_2"),
        ("/v1/spaces/%2e%2e/spaces/org_3", "org_3"),
        ("/v1/spaces/%2e%2e/admin", None),
        ("//v1//spaces//org_4", "org_4"),
    ],
)
def test_organization_in_path(path, organization):
    assert restrictions.organization_in_path(path) == organization
