"""The benchmark's results: one table for all runs, and issue 21's targets against them."""

from dataclasses import dataclass

from authsvc.server import default_workers

from .scenarios import (
    BASELINE,
    FORWARD,
    FORWARD_FEW,
    LIMITED,
    PAIRING,
    RANDOM_UNKNOWN,
    UNKNOWN,
    VALID,
    VERIFY,
)
from .wrk import Figures

# Each scenario's share of the public page's req/s, same run.
RATIO_TARGETS = [
    (VALID, 0.85),
    (LIMITED, 0.75),
    (UNKNOWN, 0.75),
    (RANDOM_UNKNOWN, 0.75),
    (FORWARD, 0.75),
    (VERIFY, 0.75),
]
FLAT_TARGET = 0.95  # the valid key's req/s, most keys against fewest
P99_TARGET_MS = 5.0  # forward-auth at a few connections
PAIRS_TARGET = 200.0  # per second, on SQLite
PSS_TARGET_MIB = 60.0  # per worker
UNCOMPARED = {PAIRING, FORWARD_FEW}  # not wrk at the baseline's connections: no ratio
NUMERIC = {0, 2, 3, 4, 5, 6, 7}  # the table's right-aligned columns


@dataclass
class Run:
    keys: int
    seed_seconds: float
    rows: list[Figures]
    pss_mib: list[float]  # per worker, after the run
    rss_mib: list[float]
    load: float  # 1-minute load average when the measurement began

    def figure(self, name: str) -> Figures | None:
        """The row of a scenario; of one measured twice (the baseline), the faster."""
        rows = [row for row in self.rows if row.name == name or row.name.startswith(f"{name} (")]
        return max(rows, key=lambda row: row.per_second, default=None)

    def ratio(self, name: str) -> float | None:
        """A scenario's req/s over the public page's."""
        row, baseline = self.figure(name), self.figure(BASELINE)
        if row is None or baseline is None or not baseline.per_second:
            return None
        return row.per_second / baseline.per_second


def ratio_cell(run: Run, row: Figures) -> str:
    value = None if row.name in UNCOMPARED else run.ratio(row.name)
    return "—" if value is None else f"{value:.2f}×"


def status_note(row: Figures) -> str:
    if row.expected == 200 or row.non_2xx == 0:
        return f"{row.non_2xx:,}"
    return f"{row.non_2xx:,} ({row.expected} expected)"


def table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    headers = ["keys", "scenario", "req/s", "p50 ms", "p99 ms", "× GET /", "non-2xx", "sock err"]
    rows = [
        [
            f"{run.keys:,}",
            row.name,
            f"{row.per_second:,.0f}",
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            ratio_cell(run, row),
            status_note(row),
            f"{row.socket_errors:,}",
        ]
        for run in runs
        for row in run.rows
    ]
    return headers, rows


def render(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append(
            "|" + "|".join("---:" if i in NUMERIC else "---" for i in range(len(headers))) + "|"
        )
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in NUMERIC else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        )

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *map(line, rows)])


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def ratio_target(runs: list[Run], name: str, threshold: float) -> str | None:
    ratios = [(run.keys, value) for run in runs if (value := run.ratio(name)) is not None]
    if not ratios:
        return None
    found = ", ".join(f"{value:.2f}× ({count:,} keys)" for count, value in ratios)
    met = min(value for _, value in ratios) >= threshold
    return f"{name} ≥ {threshold:.2f}× GET /: {found} — {verdict(met)}"


def flat_target(runs: list[Run]) -> str | None:
    if len(runs) < 2:
        return None
    small, large = runs[0].figure(VALID), runs[-1].figure(VALID)
    if small is None or large is None:
        return None
    flat = large.per_second / small.per_second
    return (
        f"{runs[-1].keys:,} keys vs {runs[0].keys:,} ({VALID}, req/s) ≥ {FLAT_TARGET:.2f}×:"
        f" {flat:.2f}× — {verdict(flat >= FLAT_TARGET)}"
    )


def latency_target(runs: list[Run]) -> str | None:
    rows = [(run.keys, row) for run in runs if (row := run.figure(FORWARD_FEW))]
    if not rows:
        return None
    found = ", ".join(
        f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms ({count:,} keys)" for count, row in rows
    )
    met = max(row.p99_ms for _, row in rows) < P99_TARGET_MS
    return f"{FORWARD_FEW}: p99 < {P99_TARGET_MS:.0f} ms: {found} — {verdict(met)}"


def pairing_target(runs: list[Run]) -> str | None:
    rows = [row for run in runs if (row := run.figure(PAIRING))]
    if not rows:
        return None
    slowest = min(row.per_second for row in rows)
    return (
        f"pairing ≥ {PAIRS_TARGET:.0f} pairs/s on SQLite: slowest {slowest:.0f}/s"
        f" — {verdict(slowest >= PAIRS_TARGET)}"
    )


def memory_target(runs: list[Run], workers: int) -> str | None:
    pss = [value for run in runs for value in run.pss_mib]
    if not pss:
        return None
    rss = max(value for run in runs for value in run.rss_mib)
    return (
        f"PSS per worker ≤ {PSS_TARGET_MIB:.0f} MiB: largest {max(pss):.1f} MiB"
        f" (RSS {rss:.1f} MiB), {workers} workers (this machine's default:"
        f" {default_workers()}) — {verdict(max(pss) <= PSS_TARGET_MIB)}"
    )


def targets(runs: list[Run], sqlite: bool, workers: int) -> list[str]:
    """Issue 21's targets, against this run's figures."""
    notes = [ratio_target(runs, name, threshold) for name, threshold in RATIO_TARGETS]
    notes += [flat_target(runs), latency_target(runs), memory_target(runs, workers)]
    if sqlite:
        notes.insert(-1, pairing_target(runs))
    return [note for note in notes if note is not None]


def memory_lines(runs: list[Run]) -> list[str]:
    return [
        f"PSS (RSS) per worker after the {run.keys:,}-key run: "
        + ", ".join(
            f"{pss:.1f} ({rss:.1f}) MiB" for pss, rss in zip(run.pss_mib, run.rss_mib, strict=True)
        )
        for run in runs
    ]
