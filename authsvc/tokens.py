"""The API key format of SPEC §3: prefix, 40 random base62 characters, CRC32 checksum."""

import hashlib
import secrets
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 40
CHECKSUM_LENGTH = 6


def base62(number: int, width: int) -> str:
    """Encode a non-negative integer in base62, left-padded with ``0`` to ``width``."""
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    """The CRC32 of ``body`` in base62, six characters."""
    return base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def generate(prefix: str) -> str:
    """Make a new secret key."""
    body = prefix + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return body + checksum(body)


def is_well_formed(token: str, prefix: str) -> bool:
    """Check prefix, length, alphabet and checksum without touching the database."""
    if not token.startswith(prefix) or len(token) != len(prefix) + RANDOM_LENGTH + CHECKSUM_LENGTH:
        return False
    random_part = token[len(prefix) :]
    if any(char not in ALPHABET for char in random_part):
        return False
    body, check = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    return secrets.compare_digest(checksum(body), check)


def digest(token: str) -> str:
    """The SHA-256 hex digest stored in place of the secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def display(token: str, prefix: str) -> str:
    """A recognisable but useless form such as ``sk-AbCd…wxYZ``."""
    random_part = token[len(prefix) :]
    return f"{prefix}{random_part[:4]}…{token[-4:]}"
