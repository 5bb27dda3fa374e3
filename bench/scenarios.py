"""What the benchmark measures: the keys it uses and one wrk scenario per kind of request."""

from pathlib import Path

from flask import Flask

from authsvc import keys, tokens, users
from authsvc.extensions import db

from .seeding import write_unknown_keys
from .wrk import Scenario

# Counted on every request, never reached: a billion a minute.
HIGH_RATE_LIMIT = {"requests": 1_000_000_000, "per_seconds": 60}
UNKNOWN_KEYS = 200_000  # in the file of well-formed keys in no database
FEW_CONNECTIONS = 4
PAIR_THREADS = 8

BASELINE = "public GET /"
VALID = "GET /v1/auth, valid key"
LIMITED = "GET /v1/auth, valid key with a rate_limit"
MALFORMED = "GET /v1/auth, malformed key"
UNKNOWN = "GET /v1/auth, unknown key"
RANDOM_UNKNOWN = "GET /v1/auth, a different unknown key each request"
FORWARD = "forward-auth GET /v1/auth/forward"
FORWARD_FEW = f"forward-auth GET /v1/auth/forward, {FEW_CONNECTIONS} connections"
VERIFY = "POST /v1/keys/verify"
PAIRING = f"pairing round trip ({PAIR_THREADS} Python threads), pairs/s"


def fixture_keys(app: Flask, folder: Path) -> dict[str, str]:
    """The measured keys (one with a rate limit), the verifying caller's key (all the owner's:
    an admin in single-user mode, so it has verify_keys), a well-formed key that does not
    exist, a malformed one, and a file of UNKNOWN_KEYS more that do not exist."""
    with app.app_context():
        owner = users.get_owner()
        _, measured = keys.create_key(owner, "bench measured", "cli")
        _, limited = keys.create_key(owner, "bench limited", "cli", rate_limit=HIGH_RATE_LIMIT)
        _, verifier = keys.create_key(owner, "bench verifier", "cli")
        db.session.commit()
        prefix = keys.key_prefix()
        db.session.remove()
        db.engine.dispose()
    unknown_file = folder / "unknown-keys.txt"
    write_unknown_keys(prefix, UNKNOWN_KEYS, unknown_file)
    return {
        "valid": measured,
        "limited": limited,
        "verifier": verifier,
        "unknown": tokens.generate(prefix),
        "malformed": prefix + "A" * tokens.RANDOM_LENGTH + "0" * tokens.CHECKSUM_LENGTH,
        "unknown file": str(unknown_file),
    }


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def scenarios(fixtures: dict[str, str]) -> list[Scenario]:
    """Every scenario, the public page (the baseline) first."""
    valid = bearer(fixtures["valid"])
    forwarded = {**valid, "X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/app/x"}
    unknown_file = Path(fixtures["unknown file"])
    with unknown_file.open() as lines:
        first_unknown = lines.readline().strip()  # the one request checked first
    return [
        Scenario(BASELINE, "GET", "/", 200),
        Scenario(VALID, "GET", "/v1/auth", 200, valid),
        Scenario(LIMITED, "GET", "/v1/auth", 200, bearer(fixtures["limited"])),
        Scenario(MALFORMED, "GET", "/v1/auth", 401, bearer(fixtures["malformed"])),
        Scenario(UNKNOWN, "GET", "/v1/auth", 401, bearer(fixtures["unknown"])),
        Scenario(
            RANDOM_UNKNOWN, "GET", "/v1/auth", 401, bearer(first_unknown), key_file=unknown_file
        ),
        Scenario(FORWARD, "GET", "/v1/auth/forward", 200, forwarded),
        Scenario(
            FORWARD_FEW, "GET", "/v1/auth/forward", 200, forwarded, connections=FEW_CONNECTIONS
        ),
        Scenario(
            VERIFY,
            "POST",
            "/v1/keys/verify",
            200,
            bearer(fixtures["verifier"]),
            {"key": fixtures["valid"]},
        ),
    ]
