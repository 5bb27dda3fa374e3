"""Pure checks behind key restrictions (authsvc/restrictions.py)."""

import posixpath
from urllib.parse import unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from authsvc import restrictions
from authsvc.errors import ApiError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/v1/spaces", "/v1/spaces"),
        ("/v1/spaces/", "/v1/spaces/"),
        ("/v1/spaces?x=1", "/v1/spaces"),
        ("/v1/spaces?next=/../admin;x=%2f", "/v1/spaces"),
        ("/", "/"),
        ("/app/my%20file", "/app/my file"),
        ("/app/%41dmin", "/app/Admin"),
        ("/app/.well-known/x", "/app/.well-known/x"),
        ("/app/.../x", "/app/.../x"),
        ("/app/caf%C3%A9", "/app/café"),
    ],
)
def test_clean_path_accepts(raw, expected):
    assert restrictions.clean_path(raw) == expected


# Issue 9's bypasses, then every kind SPEC §3 lists, then our additions.
AMBIGUOUS = [
    "/app/admin/x%2f..%2f..%2fpublic",
    "/app/admin%2f..%2fpublic",
    "/app/admin/%252e%252e%252fpublic",
    "/app/admin/%2E%2E/public",
    "/app/public/..;/admin",
    "/v1/spaces;/org_x",
    "/v1/spaces/../admin",
    "/v1/spaces/./x",
    "/v1/spaces/..",
    "/v1/spaces/.",
    "/..",
    "/v1/%2fspaces",
    "/v1/%2Fspaces",
    "/v1/%5cspaces",
    "/v1/%5Cspaces",
    "/v1/%2espaces",
    "/v1/%25",
    "/v1\\spaces",
    "/v1;x/spaces",
    "//v1/spaces",
    "/v1//spaces",
    "/v1/spaces//",
    "",
    "v1/spaces",
    "http://example.com/v1/spaces",
    "/v1/%zz",
    "/v1/%2",
    "/v1/%3b",
    "/v1/%3fx",
    "/v1/%23x",
    "/v1/spaces#/../admin",
    "/v1/%00",
    "/v1/\x00",
    "/v1/%ff",
    "/app/admin%EF%BC%8Fx",
]


@pytest.mark.parametrize("raw", AMBIGUOUS)
def test_clean_path_refuses(raw):
    with pytest.raises(ApiError) as refused:
        restrictions.clean_path(raw)
    assert (refused.value.status, refused.value.message) == (403, "ambiguous request path")


def old_reading(path: str) -> str:
    """How a lenient server may read a path: decode up to three times, fold, collapse dots."""
    for _ in range(3):
        path = unquote(path)
    return "/" + posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/")


# Few characters, most of them dangerous, so that the search reaches the tricky spellings.
PATHS = st.text(alphabet="/.%25cCeEfF;\\?#ab34", max_size=24).map(lambda text: "/" + text)


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(PATHS)
@example("/app/public")
@example("/a/.b/c.")
@example("/a/%2541")
@example("/a/%2f%2e%2e")
def test_an_approved_path_reads_the_same_to_every_reader(raw):
    try:
        clean = restrictions.clean_path(raw)
    except ApiError as error:
        assert (error.status, error.message) == (403, "ambiguous request path")
        return
    segments = clean.split("/")
    assert len(segments) == len(raw.partition("?")[0].split("/"))  # no separator made or lost
    assert "." not in segments and ".." not in segments
    assert unquote(clean) == clean  # nothing left to decode
    assert not {"\\", ";", "%"} & set(clean) and "//" not in clean
    assert old_reading(clean) == old_reading(raw.partition("?")[0]) == (clean.rstrip("/") or "/")


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(PATHS)
def test_no_approved_path_leaves_the_rule(raw):
    rules = ["GET /a/b"]
    try:
        clean = restrictions.clean_path(raw)
    except ApiError:
        return
    if restrictions.endpoint_allowed(rules, "GET", clean):
        read = old_reading(raw.partition("?")[0])
        assert read == "/a/b" or read.startswith("/a/b/")


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.sampled_from(["v1", "V1"]),
    st.sampled_from(["spaces", "Spaces", "SPACES", "sPaCeS"]),
    st.sampled_from(["org_0a1b", "ORG_0A1B", "Org_0a1B"]),
    st.sampled_from(["", "/", "/objects", "/objects?x=1"]),
)
def test_organization_ids_are_found_in_any_case(version, spaces, org, rest):
    path = restrictions.clean_path(f"/{version}/{spaces}/{org}{rest}")
    assert restrictions.organization_in_path(path) == "org_0a1b"


@pytest.mark.parametrize(
    ("rules", "method", "path", "allowed"),
    [
        (["/v1/spaces"], "GET", "/v1/spaces", True),
        (["/v1/spaces"], "GET", "/v1/spaces/", True),
        (["/v1/spaces"], "POST", "/v1/spaces/abc/objects", True),
        (["/v1/spaces"], "GET", "/v1/spacesx", False),
        (["/v1/spaces"], "GET", "/v1/space", False),
        (["/v1/spaces"], "GET", "/v1/auth", False),
        (["/v1/spaces/"], "GET", "/v1/spaces", True),
        (["GET /v1/spaces"], "GET", "/v1/spaces/x", True),
        (["GET /v1/spaces"], "get", "/v1/spaces", True),
        (["get /v1/spaces"], "GET", "/v1/spaces", True),
        (["GET /v1/spaces"], "POST", "/v1/spaces", False),
        (["POST /v1/spaces", "GET /v1/auth"], "GET", "/v1/auth/whoami", True),
        ([], "GET", "/v1/spaces", False),
        (["/"], "DELETE", "/anything/at/all", True),
        ([" /v1/spaces "], "GET", "/v1/spaces", True),
        (["/v1/spaces/../admin"], "GET", "/v1/admin", False),
        (["/v1//spaces", "/v1/%2e"], "GET", "/v1/spaces", False),
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
        ("/v1/spaces/../admin", False),
        ("GET /v1//spaces", False),
        ("/v1/%2fx", False),
        ("/v1;x", False),
        ("/v1/spaces?x", False),
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
        ("/V1/spaces/org_1", "org_1"),
        ("/v1/Spaces/ORG_1/x", "org_1"),
        ("/v1/spaces", None),
        ("/v1/spaces/", None),
        ("/v1/auth", None),
        ("/v2/spaces/org_1", None),
        ("/x/v1/spaces/org_1", None),
    ],
)
def test_organization_in_path(path, organization):
    assert restrictions.organization_in_path(path) == organization
