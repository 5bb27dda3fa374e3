"""The pairing happy path, end to end through the test client."""

from authsvc.tokens import is_well_formed
from tests.conftest import bearer, pair


def test_pairing_then_whoami(client):
    issued = pair(client, "Notes App")
    assert is_well_formed(issued["api_key"], "sk-")
    assert issued["name"] == "Notes App"
    whoami = client.get("/v1/auth", headers=bearer(issued["api_key"]))
    assert whoami.status_code == 200
    assert whoami.json["authenticated"] is True
    assert whoami.json["key"]["id"] == issued["key_id"]
    assert whoami.headers["Anytype-Version"] == "2025-11-08"
    spaces = client.get("/v1/spaces", headers=bearer(issued["api_key"])).json
    assert [space["name"] for space in spaces["data"]] == ["Personal"]
