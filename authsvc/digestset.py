"""A compact in-memory set of key digests: most unknown keys are refused without a query.

A Bloom filter: it never says "absent" of a digest it was given, and says "present" of about
1 % of the others (those then ask the database, as every unknown key did before). Ten bits per
key, seven probes: a million keys take 2 MiB. A SHA-256 digest is already uniformly random, so
the probes are slices of it, not hashes of their own.
"""

BITS_PER_KEY = 10
PROBES = 7
PROBE_BITS = 32  # PROBES * PROBE_BITS <= 256, the digest's own bits
MIN_BITS = 1 << 16


class DigestSet:
    """Digests added, never removed (a deleted key's digest stays a harmless false "present")."""

    def __init__(self, capacity: int) -> None:
        size = MIN_BITS
        while size < capacity * BITS_PER_KEY:
            size <<= 1
        self.capacity = size // BITS_PER_KEY
        self.mask = size - 1
        self.bits = bytearray(size // 8)
        self.count = 0

    def indexes(self, digest: str) -> list[int]:
        number = int(digest, 16)
        found = []
        for _ in range(PROBES):
            found.append(number & self.mask)
            number >>= PROBE_BITS
        return found

    def add(self, digest: str) -> None:
        for index in self.indexes(digest):
            self.bits[index >> 3] |= 1 << (index & 7)
        self.count += 1

    def __contains__(self, digest: str) -> bool:
        bits = self.bits
        return all(bits[index >> 3] & (1 << (index & 7)) for index in self.indexes(digest))

    @property
    def full(self) -> bool:
        """Past its capacity the false "present" rate climbs: time for a bigger one."""
        return self.count > self.capacity
