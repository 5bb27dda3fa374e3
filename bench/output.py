"""What the benchmarks print: progress on stderr, so that stdout holds only the results."""

import sys


def say(message: str) -> None:
    """One line of progress on stderr."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
