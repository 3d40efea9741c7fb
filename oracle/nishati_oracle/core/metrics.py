"""Prometheus metrics of the oracle, on a registry of its own (one per app instance)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# Where a batch's verify-and-store time goes, in order: the checks and lookups before it queues,
# the wait for the writer, the checks against each meter's last reading, its group's transaction,
# and the wait for the event loop to resume it with the answer.
INGEST_STEPS = ("prepare", "queued", "check", "store", "answer")
# A write transaction on SQLite's writer thread, in order: the hand-over to the thread, the
# statements, the commit (its fsync), the hand-back to the event loop.
WRITE_STEPS = ("handover", "statements", "commit", "return")
ROUND_BUCKETS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


def observe_steps(histograms: Sequence[Histogram] | None, times: Sequence[float]) -> list[float]:
    """Observes the time between each two of ``times`` into the step's histogram (if any), and
    returns those times in seconds."""
    steps = [end - start for start, end in pairwise(times)]
    for histogram, secs in zip(histograms or (), steps, strict=False):
        histogram.observe(secs)
    return steps


def steps_ms(names: Sequence[str], steps: Sequence[float]) -> dict[str, float]:
    """The steps as a slow-log line has them: each step's milliseconds, to a tenth. Built only
    for a line that is logged, off the path of every request."""
    return {name: round(secs * 1e3, 1) for name, secs in zip(names, steps, strict=True)}


def counts_by_label(counter: Counter) -> dict[str, int]:
    """A counter with one label, as ``{label value: count}`` (the values counted so far)."""
    return {
        next(iter(sample.labels.values())): int(sample.value)
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels
    }


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "nishati_readings_received", "Readings received", ["transport"], registry=self.registry
        )
        self.accepted = Counter(
            "nishati_readings_accepted", "Readings verified and stored", registry=self.registry
        )
        self.duplicates = Counter(
            "nishati_readings_duplicate", "Readings received again", registry=self.registry
        )
        self.rejected = Counter(
            "nishati_readings_rejected", "Readings refused", ["reason"], registry=self.registry
        )
        self.ingest_seconds = Histogram(
            "nishati_ingest_seconds",
            "Time to verify and durably store a batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingest_steps = Histogram(
            "nishati_ingest_step_seconds",
            f"A batch's verify-and-store time by step: {', '.join(INGEST_STEPS)}",
            ["step"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sqlite_write = Histogram(
            "nishati_sqlite_write_seconds",
            f"A write transaction on SQLite's writer thread by step: {', '.join(WRITE_STEPS)}",
            ["step"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sqlite_checkpoint = Histogram(
            "nishati_sqlite_checkpoint_seconds",
            "SQLite checkpoints by mode: passive, finish (holds off commits), restart (too)",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.attest_batches = Counter(
            "nishati_attest_batches", "Attestation transactions", ["result"], registry=self.registry
        )
        self.attested = Counter(
            "nishati_readings_attested", "Readings attested on chain", registry=self.registry
        )
        self.attest_refused = Counter(
            "nishati_attest_refused",
            "Stored readings the chain refused, by the program's error (MeterReplaced: their "
            "meter was replaced first); each is kept with its reason",
            ["reason"],
            registry=self.registry,
        )
        self.attest_held = Gauge(
            "nishati_attest_held",
            "Meters whose latest reading the batcher holds back, as of its last round, by the "
            "program's error the chain would refuse it with now",
            ["reason"],
            registry=self.registry,
        )
        self.attest_seconds = Histogram(
            "nishati_attest_seconds",
            "Time to send and confirm an attestation",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "nishati_event_loop_lag_seconds",
            "How late the event loop ran a timer (every request waits this on top of its work)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.gc_pause = Histogram(
            "nishati_gc_pause_seconds",
            "Garbage collection pauses by generation (they stop every thread)",
            ["generation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "nishati_unattested_readings",
            "Stored readings not yet attested",
            registry=self.registry,
        )
        self.callbacks = Counter(
            "nishati_callbacks",
            "Daraja callbacks by kind and what became of them: new, duplicate, over_limit",
            ["kind", "result"],
            registry=self.registry,
        )
        self.callback_seconds = Histogram(
            "nishati_callback_ack_seconds",
            "Time to store and acknowledge a Daraja callback",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.trades = Counter(
            "nishati_trades", "Trade state changes", ["state"], registry=self.registry
        )
        self.sign_in_codes = Counter(
            "nishati_sign_in_codes",
            "Sign-in codes asked for, by what became of them: sent, refused or unavailable "
            "(the SMS API's answer), no_household (a phone no household has: nothing sent)",
            ["outcome"],
            registry=self.registry,
        )
        self.sign_ins = Counter(
            "nishati_sign_ins",
            "Sign-ins by who (household, operator) and how they ended (the reason of a refusal)",
            ["holder", "outcome"],
            registry=self.registry,
        )
        self.trade_mismatches = Counter(
            "nishati_trade_mismatches",
            "Trades whose account on chain differs from the ledger (flagged, nothing sent)",
            registry=self.registry,
        )
        self.settle_batches = Counter(
            "nishati_settle_transactions",
            "Settle and cancel transactions, and how many trades they closed",
            ["result"],
            registry=self.registry,
        )
        self.reconciliations = Counter(
            "nishati_reconciliations",
            "Reconciliations of the ledger with Daraja (each asks about every payment, payout "
            "and refund whose outcome is not final)",
            registry=self.registry,
        )
        self.reconcile_asked = Counter(
            "nishati_reconcile_asked",
            "What reconciliations asked Daraja about, by kind: payment, payout, refund",
            ["kind"],
            registry=self.registry,
        )
        self.ledger_mismatches = Counter(
            "nishati_ledger_mismatches",
            "Daraja's answers that contradict the ledger (a payout or refund the ledger holds "
            "failed that was made, a cancelled trade that was paid), by kind; each is logged and "
            "the ledger follows Daraja",
            ["kind"],
            registry=self.registry,
        )
        self.forecast_rounds = Counter(
            "nishati_forecast_rounds", "Forecast rounds over every home", registry=self.registry
        )
        self.forecast_round_seconds = Histogram(
            "nishati_forecast_round_seconds",
            "Time a forecast round takes: readings bucketed, steps scored, weather, model, stored",
            buckets=ROUND_BUCKETS,
            registry=self.registry,
        )
        self.forecast_weather_requests = Counter(
            "nishati_forecast_weather_requests",
            "Requests sent to Open-Meteo by forecast rounds (at most one per grid cell a round, "
            "and its retries after a 429)",
            registry=self.registry,
        )
        self.forecast_homes = Gauge(
            "nishati_forecast_homes",
            "Homes the last round forecast, by source: weather, or clear_sky (no weather)",
            ["source"],
            registry=self.registry,
        )
        self.forecast_scored = Counter(
            "nishati_forecast_scored_steps",
            "Daylight forecast steps scored against what the meter reported, by horizon",
            ["horizon"],
            registry=self.registry,
        )
        self.forecast_dropped = Counter(
            "nishati_forecast_dropped_steps",
            "Forecast steps dropped unscored: the meter had not reported them a day later",
            ["horizon"],
            registry=self.registry,
        )
        self.auto_sell_offers = Counter(
            "nishati_auto_sell_offers",
            "Automatic offers (auto-sell), by action: made, or closed (replaced or stopped)",
            ["action"],
            registry=self.registry,
        )
        self.forecast_mae = Gauge(
            "nishati_forecast_mae_wh",
            "Market-wide mean absolute error of the surplus forecast (Wh per 15-minute "
            "daylight step), by horizon",
            ["horizon"],
            registry=self.registry,
        )
        self.forecast_skill = Gauge(
            "nishati_forecast_skill",
            "Market-wide skill of the surplus forecast against smart persistence (1 - MAE / "
            "smart persistence's MAE; above 0 is better), by horizon",
            ["horizon"],
            registry=self.registry,
        )
