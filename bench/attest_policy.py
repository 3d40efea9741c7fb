"""What the attestation policy costs each household a day on chain.

Replays a simulated week of readings (every 5 minutes, the simulator's solar and load curves)
through the batcher's rule (attest a meter's latest reading once its unattested export reaches
the threshold or its oldest unattested reading reaches the maximum age) and prices the
attestations: each carries the meter's Ed25519 signature, which the runtime charges like a
transaction signature, plus a share of the oracle's own signature over a full batch.

Run: ``.venv/bin/python -m bench.attest_policy``
"""

from __future__ import annotations

import random

from bench.sizes import readings_per_attestation
from nishati_client.chain import SendPolicy
from nishati_dev.simulate import Home, energy_mwh

READING_INTERVAL_SECS = 300
DAYS = 7
START = 1_795_000_000  # a Unix time in late 2026
LAMPORTS_PER_SIGNATURE = 5_000
POLICIES = [  # (export threshold Wh, maximum age s)
    (500, 6 * 3_600),
    (1_000, 6 * 3_600),
    (1_000, 24 * 3_600),
    (5_000, 24 * 3_600),
]


def attestations(home: Home, threshold_wh: int, max_age_secs: int) -> int:
    """Attestations over the replayed days for one home under one policy."""
    count = 0
    exported_mwh = 0
    attested_mwh = 0
    oldest_unattested: int | None = None
    for t in range(START, START + DAYS * 86_400, READING_INTERVAL_SECS):
        exported_mwh += energy_mwh(home, t - READING_INTERVAL_SECS, t)[0]
        oldest_unattested = oldest_unattested or t
        pending_wh = (exported_mwh - attested_mwh) // 1_000
        if pending_wh >= threshold_wh or t - oldest_unattested >= max_age_secs:
            count += 1
            attested_mwh = exported_mwh
            oldest_unattested = None
    return count


def main() -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible homes, not a secret
    homes = [
        Home(pv_kwp=round(rng.uniform(1.0, 5.0), 1), load_scale=1.0, seed=f"home-{i}")
        for i in range(20)
    ]
    batch = readings_per_attestation(SendPolicy())
    per_attestation = LAMPORTS_PER_SIGNATURE + LAMPORTS_PER_SIGNATURE // batch
    print(f"{DAYS} simulated days, {len(homes)} homes of 1-5 kWp, a reading every 5 minutes")
    print(
        f"each attestation costs {per_attestation:,} lamports "
        f"(its meter's signature, and 1/{batch} of a {batch}-reading transaction)"
    )
    print(f"{'threshold':>10} {'max age':>8} {'attests/day':>12} {'lamports/day':>13}")
    for threshold, max_age in POLICIES:
        per_day = sum(attestations(h, threshold, max_age) for h in homes) / len(homes) / DAYS
        lamports = round(per_day * per_attestation)
        print(f"{threshold:>8} Wh {max_age // 3_600:>6} h {per_day:>12.1f} {lamports:>13,}")


if __name__ == "__main__":
    main()
