"""The numbers every bench prints: percentiles and rates, the oracle's histograms read between
two samples of its ``/metrics``, and the report that sets each figure beside its target and
marks a missed one MISSED."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# An event-loop stall this long shows in a request's latency; the oracle's LATENCY_BUCKETS
# have this bound.
STALL_BOUND = "0.02"


@dataclass
class Row:
    what: str
    measured: str
    target: str
    verdict: str
    note: str


@dataclass
class Report:
    """Rows against targets, setup steps and notes: printed as they come, then as a table
    under ``title``."""

    title: str
    rows: list[Row] = field(default_factory=list)
    setup: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, what: str, measured: str, target: str = "", ok: bool | None = None, note: str = ""
    ) -> None:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        self.rows.append(Row(what, measured, target, verdict, note))
        print(f"  {what}: {measured}" + (f" (target {target}: {verdict})" if verdict else ""))

    def add_latencies(
        self,
        what: str,
        answered: Sequence[float],
        given_up: Sequence[float],
        target_ms: float,
        note: str,
    ) -> None:
        """A latency row: p50 and p99 of the answered requests' seconds and of the given-up
        ones' (which waited at least that long: counted at that, marked ">"), the p99 against
        ``target_ms``."""
        samples = [(t, False) for t in answered] + [(t, True) for t in given_up]
        p50, p99 = (censored_percentile(samples, p) for p in (50, 99))
        ok = percentile([t for t, _ in samples], 99) * 1e3 < target_ms
        self.add(what, f"p50 {p50}, p99 {p99}", f"p99 < {target_ms:g} ms", ok, note)

    def step(self, what: str, value: str) -> None:
        self.setup.append((what, value))
        print(f"  setup: {what}: {value}")

    def print(self) -> None:
        print()
        print(self.title)
        if self.rows:
            width = max(len(r.what) for r in self.rows)
            measured = max(len(r.measured) for r in self.rows)
            target = max(len(r.target) for r in self.rows)
            print(f"{'':<{width}}  {'measured':>{measured}}  {'target':<{target}}  verdict")
            for r in self.rows:
                line = (
                    f"{r.what:<{width}}  {r.measured:>{measured}}  {r.target:<{target}}  "
                    f"{r.verdict}"
                )
                print(line.rstrip())
                if r.note:
                    print(f"    {r.note}")
        if self.setup:
            print()
            print("setup, not counted:")
            swidth = max(len(w) for w, _ in self.setup)
            for what, value in self.setup:
                print(f"  {what:<{swidth}}  {value}")
        if self.notes:
            print()
            for note in self.notes:
                print(f"- {note}")


def per_sec(count: float, secs: float) -> str:
    return f"{count / secs:,.0f}/s" if secs > 0 else "-"


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile."""
    ranked = sorted(values)
    rank = math.ceil(len(ranked) * p / 100)
    return ranked[min(len(ranked), max(rank, 1)) - 1]


def ms(secs: float) -> str:
    return f"{secs * 1e3:,.1f} ms"


@dataclass(frozen=True)
class Observed:
    """New observations of a histogram between two samples."""

    count: float
    mean: float
    p99_bound: float  # the smallest bucket bound holding 99% of them
    stalled: float  # how many took longer than STALL_BOUND


def observed(
    before: dict[str, float], after: dict[str, float], name: str, label: str = ""
) -> Observed:
    """New observations of a histogram (its series with ``label``, e.g. ``step="queued"``)."""

    def grew(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    series = f"{{{label}}}" if label else ""
    count, total = grew(f"{name}_count{series}"), grew(f"{name}_sum{series}")
    if count <= 0:
        return Observed(0.0, 0.0, 0.0, 0.0)
    # Labels are sorted by name, so ``le`` may come before or after ``label``.
    buckets = sorted(
        (float(key.split('le="')[1].split('"')[0]), grew(key))
        for key in after
        if key.startswith(f"{name}_bucket{{") and label in key
    )
    bound = next((le for le, n in buckets if n >= 0.99 * count), math.inf)
    stalled = count - next((n for le, n in buckets if le == float(STALL_BOUND)), count)
    return Observed(count, total / count, bound, stalled)


def histogram_p99(before: dict[str, float], after: dict[str, float], name: str) -> str:
    """The oracle's own view of the phase's latency."""
    seen = observed(before, after, name)
    if not seen.count:
        return "no observations"
    return (
        f"its histogram: mean {ms(seen.mean)}, p99 <= {ms(seen.p99_bound)} "
        f"({seen.count:,.0f} observed)"
    )


def censored_percentile(samples: Sequence[tuple[float, bool]], p: float) -> str:
    """The nearest-rank percentile of (seconds, given up) samples, in ms. A given-up request's
    time is only a lower bound of its latency, so a percentile at or past the shortest of them
    is one too, marked ">"."""
    value = percentile([t for t, _ in samples], p)
    bound = min((t for t, given_up in samples if given_up), default=math.inf)
    return f"{'>' if value >= bound else ''}{value * 1e3:,.1f} ms"
