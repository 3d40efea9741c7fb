"""Ed25519 verification, and the ingest it allows: the single-thread ``cryptography`` rate (a
public key loaded per reading, as the oracle verified before the extension), the
``nishati_verify`` extension's rates one call a signature and one call a batch, and readings per
second stored by one oracle on one core beside them, over HTTP batches and then over MQTT
(target: at least twice the ``cryptography`` rate, for each).

Run: ``.venv/bin/python -m bench.verify`` (or ``--quick``). The ingest phase is
``bench.oracle``'s (its meters, senders and oracle process pinned with ``taskset``), on a local
validator; it needs the built program (``scripts/build-program.sh``) and the extension
(``scripts/build-native.sh``).
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import nishati_verify
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from bench.harness import LOAD_CORE, ORACLE_CORE, BenchOracle, arguments, bench_main, pin
from bench.oracle import (
    HTTP_TIMEOUT_SECS,
    ORACLE_LAMPORTS,
    PAYER_LAMPORTS,
    QUICK,
    Home,
    Sent,
    broker_or_none,
    broker_up,
    counting_rows,
    first_contact,
    oracle_env,
    post_batches,
    publish_all,
    register,
    rounds,
)
from bench.stats import Report, per_sec
from nishati_client.chain import RpcChain
from nishati_client.ed25519 import verify_with_cryptography
from nishati_client.keys import write_keypair
from nishati_client.program import NishatiClient
from nishati_client.readings import READING_LEN
from nishati_dev.broker import Mosquitto
from nishati_dev.localnet import LocalValidator
from nishati_dev.sandbox import Harness, fund, open_market
from nishati_dev.settings import LocalChainSettings

TARGET_RATIO = 2
BATCH_SIZES = (32, 500)
Items = list[tuple[bytes, bytes, bytes]]


@dataclass(frozen=True)
class Size:
    name: str
    verify_secs: float
    meters: int
    # Readings per POST, readings per meter, concurrent senders.
    per_post: int
    count: int
    senders: int
    # Readings per meter over MQTT.
    mqtt_count: int


FULL = Size("full", 3.0, 5_000, 500, 6, 4, 3)
SMALL = Size("quick", 1.0, 1_000, 500, 10, 4, 5)


def signed_items(count: int) -> Items:
    """``count`` reading-sized messages, each signed by its own key."""
    items = []
    for _ in range(count):
        key = Ed25519PrivateKey.generate()
        message = os.urandom(READING_LEN)
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        items.append((public, key.sign(message), message))
    return items


Check = Callable[[Items], Sequence[bool]]
# Each way is timed in slices this long, taken in turn, so a load that comes and goes on the
# shared machine weighs on every way alike.
SLICE_SECS = 0.1


def rates(ways: dict[str, tuple[Check, int]], items: Items, secs: float) -> dict[str, float]:
    """Signatures a second each way passes (``check`` called ``per_call`` at a time), on this
    thread, each for about ``secs`` in all."""
    done = dict.fromkeys(ways, 0)
    took = dict.fromkeys(ways, 0.0)
    while min(took.values()) < secs:
        for name, (check, per_call) in ways.items():
            started = time.perf_counter()
            while time.perf_counter() - started < SLICE_SECS:
                for i in range(0, len(items), per_call):
                    if not all(check(items[i : i + per_call])):
                        raise AssertionError("a valid signature was refused")
                    done[name] += len(items[i : i + per_call])
            took[name] += time.perf_counter() - started
    return {name: done[name] / took[name] for name in ways}


def verify_rates(report: Report, size: Size) -> float:
    """The rates on this core alone; returns the ``cryptography`` rate."""
    items = signed_items(256)
    ways: dict[str, tuple[Check, int]] = {
        "cryptography": (lambda call: [cryptography_verify(*i) for i in call], 1),
        "stand-in": (lambda call: [verify_with_cryptography(*i) for i in call], 1),
        "single": (lambda call: [nishati_verify.verify(*i) for i in call], 1),
        **{f"batch {n}": (nishati_verify.verify_batch, n) for n in BATCH_SIZES},
    }
    measured = rates(ways, items, size.verify_secs)
    ceiling = measured["cryptography"]
    report.add(
        "Ed25519 verify, cryptography, one thread",
        f"{ceiling:,.0f}/s",
        note="a public key loaded per reading, as the oracle verified before the extension",
    )
    report.add(
        "verify_strict from cryptography (the stand-in without the extension)",
        f"{measured['stand-in']:,.0f}/s",
    )
    single = measured["single"]
    report.add(
        "nishati_verify.verify, one call a signature",
        f"{single:,.0f}/s",
        f">= {TARGET_RATIO} x cryptography",
        single >= TARGET_RATIO * ceiling,
        f"{single / ceiling:.1f} x cryptography",
    )
    for n in BATCH_SIZES:
        batched = measured[f"batch {n}"]
        report.add(
            f"nishati_verify.verify_batch, {n} a call",
            f"{batched:,.0f}/s",
            note=f"{batched / ceiling:.1f} x cryptography",
        )
    return ceiling


def cryptography_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """``cryptography``'s verdict alone, the key loaded for the one signature."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


async def ingest(report: Report, size: Size, directory: Path, ceiling: float) -> None:
    """Readings stored per second over HTTP batches by one oracle on its own core."""
    pin(os.getpid(), {LOAD_CORE})
    settings = LocalChainSettings()
    program_id = Pubkey.from_string(settings.program_id)
    payer = Keypair()
    rng = random.Random(19)  # noqa: S311 - home sizes, not secrets
    with (
        broker_or_none(directory) as broker,
        LocalValidator(settings, {str(payer.pubkey()): PAYER_LAMPORTS}) as validator,
    ):
        chain = RpcChain(validator.rpc_url, program_id, settings.commitment)
        try:
            market = await open_market(
                Harness(chain, payer, NishatiClient(chain, program_id), None)
            )
            await fund(market.h, market.oracle.pubkey(), ORACLE_LAMPORTS)
            key = directory / "oracle.json"
            write_keypair(key, market.oracle)
            database = directory / "ingest.db"
            env = oracle_env(market, validator.rpc_url, key, database, broker)
            started = time.perf_counter()
            homes, _ = await register(market, size.meters, chain, rng)
            report.step(
                f"registering {len(homes):,} households", f"{time.perf_counter() - started:,.1f} s"
            )
            oracle = BenchOracle(
                env | {"NISHATI_ATTEST_INTERVAL_SECS": "86400"}, directory / "oracle.log", None
            )
            with oracle:
                await first_contact(report, QUICK, homes, oracle)
                readings = rounds(homes, size.count)
                cpu = oracle.cpu_secs()
                sent, secs = await post_batches(oracle, readings, size.per_post, size.senders)
                used = oracle.cpu_secs() - cpu
                http_rows(report, size, sent, secs, used, ceiling)
                await over_mqtt(
                    report, size, homes, oracle, broker, database, market.address, ceiling
                )
        finally:
            await chain.close()


def http_rows(
    report: Report, size: Size, sent: Sent, secs: float, used: float, ceiling: float
) -> None:
    """The HTTP phase's rows: readings stored a second, and a second of the oracle's CPU."""
    stored = sent.accepted / secs
    report.add(
        f"HTTP, {size.per_post} per POST, {size.senders} senders, {sent.readings:,} readings",
        per_sec(sent.accepted, secs),
        f">= {TARGET_RATIO} x cryptography ({TARGET_RATIO * ceiling:,.0f}/s)",
        stored >= TARGET_RATIO * ceiling,
        f"{stored / ceiling:.1f} x cryptography; oracle CPU {used / secs:.0%} of core "
        f"{ORACLE_CORE}, {used / max(sent.accepted, 1) * 1e6:,.0f} µs a reading"
        + (f"; refused: {sent.problems()}" if sent.refused else ""),
    )
    per_cpu_sec = sent.accepted / used
    report.add(
        "HTTP, the same, readings per second of the oracle's CPU",
        f"{per_cpu_sec:,.0f}",
        f">= {TARGET_RATIO} x cryptography",
        per_cpu_sec >= TARGET_RATIO * ceiling,
        "what one core would store saturated: the rate above is lower when the senders' core "
        "is shared (see the load average)",
    )


async def over_mqtt(
    report: Report,
    size: Size,
    homes: list[Home],
    oracle: BenchOracle,
    broker: Mosquitto | None,
    database: Path,
    market: Pubkey,
    ceiling: float,
) -> None:
    """Readings stored per second over MQTT (QoS 1, the simulator's publisher) by the same
    oracle, after the HTTP phase."""
    what = f"MQTT, QoS 1, one publisher, {size.mqtt_count} readings a meter"
    target = f">= {TARGET_RATIO} x cryptography ({TARGET_RATIO * ceiling:,.0f}/s)"
    if broker is None:
        report.add(what, "not run", target, None, "no mosquitto (scripts/bootstrap.sh)")
        return
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECS) as client:
        if not await broker_up(oracle, client):
            report.add(what, "not run", target, None, "the oracle reports no broker connection")
            return
    readings = rounds(homes, size.mqtt_count)
    total = sum(len(r) for r in readings)
    cpu = oracle.cpu_secs()
    _, secs, stored, tally = await publish_all(broker, market, readings, counting_rows(database))
    used = oracle.cpu_secs() - cpu
    rate = stored / secs
    report.add(
        f"{what}, {total:,} readings",
        per_sec(stored, secs),
        target,
        stored == total and rate >= TARGET_RATIO * ceiling,
        f"{rate / ceiling:.1f} x cryptography; oracle CPU {used / secs:.0%}, "
        f"{used / max(stored, 1) * 1e6:,.0f} µs a reading; "
        f"{stored / max(used, 1e-9):,.0f} readings per second of the oracle's CPU"
        + ("" if stored == total else f"; only {stored:,} of {total:,} stored")
        + (f"; refused: {dict(tally.rejected)}" if tally.rejected else ""),
    )


async def run(size: Size, directory: Path, _profiles: Path | None) -> Report:
    report = Report(
        f"Ed25519 verification, {size.name} size: rates on one thread, then one oracle on core "
        f"{ORACLE_CORE}"
    )
    pin(os.getpid(), {ORACLE_CORE})
    ceiling = verify_rates(report, size)
    await ingest(report, size, directory, ceiling)
    return report


def main() -> None:
    args = arguments(__doc__ or "", "nothing").parse_args()
    bench_main("verify", args, functools.partial(run, SMALL if args.quick else FULL))


if __name__ == "__main__":
    main()
