"""The key format of SPEC §3, as pure functions."""

import hashlib
import re
import zlib

import pytest

from authsvc import tokens

PATTERN = re.compile(r"^sk-[0-9A-Za-z]{40}[0-9A-Za-z]{6}$")


def test_generated_keys_have_the_format():
    secret = tokens.generate("sk-")
    assert PATTERN.match(secret)
    assert tokens.is_well_formed(secret, "sk-")


def test_checksum_is_the_crc32_of_everything_before_it():
    secret = tokens.generate("sk-")
    body, check = secret[:-6], secret[-6:]
    number = 0
    for char in check:
        number = number * 62 + tokens.ALPHABET.index(char)
    assert number == zlib.crc32(body.encode())


def test_generated_keys_differ():
    assert len({tokens.generate("sk-") for _ in range(200)}) == 200


def test_alphabet():
    assert tokens.ALPHABET == "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@pytest.mark.parametrize(
    ("number", "width", "expected"),
    [(0, 6, "000000"), (1, 6, "000001"), (61, 2, "0z"), (62, 2, "10"), (2**32 - 1, 6, "4gfFC3")],
)
def test_base62(number, width, expected):
    assert tokens.base62(number, width) == expected


def test_largest_checksum_fits_six_characters():
    assert len(tokens.base62(2**32 - 1, 6)) == 6


@pytest.mark.parametrize("prefix", ["sk-", "ak_", "myapp-live-", ""])
def test_prefixes(prefix):
    secret = tokens.generate(prefix)
    assert secret.startswith(prefix)
    assert len(secret) == len(prefix) + 46
    assert tokens.is_well_formed(secret, prefix)


def test_rejects_malformed():
    secret = tokens.generate("sk-")
    flipped = "1" if secret[-1] == "0" else "0"
    assert not tokens.is_well_formed(secret[:-1] + flipped, "sk-")
    assert not tokens.is_well_formed("pk-" + secret[3:], "sk-")
    assert not tokens.is_well_formed(secret, "ak_")
    assert not tokens.is_well_formed(secret[:-1], "sk-")
    assert not tokens.is_well_formed(secret + "0", "sk-")
    assert not tokens.is_well_formed("", "sk-")
    assert not tokens.is_well_formed("sk-", "sk-")
    # Outside the alphabet but with a matching checksum.
    body = "sk-" + "-" * 40
    assert not tokens.is_well_formed(body + tokens.checksum(body), "sk-")
    body = "sk-" + "é" * 40
    assert not tokens.is_well_formed(body + tokens.checksum(body), "sk-")


def test_digest_is_sha256_hex():
    secret = tokens.generate("sk-")
    assert tokens.digest(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert len(tokens.digest(secret)) == 64


def test_display_hides_the_secret():
    secret = tokens.generate("sk-")
    shown = tokens.display(secret, "sk-")
    assert shown == f"sk-{secret[3:7]}…{secret[-4:]}"
    assert len(shown) <= 40
