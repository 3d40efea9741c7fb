"""How many readings an attestation carries: the bytes of an Ed25519 + ``meter_attest``
transaction, legacy and v0 with a lookup table, computed offline. bench.market, bench.oracle and
bench.attest_policy size their batches by it."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import PACKET_DATA_SIZE, SendPolicy, transaction_size
from nishati_client.idl import IDL_PROGRAM_ID
from nishati_client.lookup import attest_accounts
from nishati_client.program import NishatiProgram
from nishati_client.readings import Reading, SignedReading, sign


def attest_sizes(
    program: NishatiProgram,
    oracle: Keypair,
    market: Pubkey,
    readings: list[tuple[SignedReading, Pubkey]],
    policy: SendPolicy,
) -> tuple[int, int]:
    """Bytes of one attestation as a legacy transaction, and as the oracle sends it: v0, with
    a lookup table holding every account but its own."""
    ixs = program.attest_readings(oracle=oracle.pubkey(), market=market, readings=readings)
    households = [household for _, household in readings]
    table = AddressLookupTableAccount(
        Pubkey.new_unique(), attest_accounts(program, market, households)
    )
    return (
        transaction_size(ixs, [oracle], policy),
        transaction_size(ixs, [oracle], policy, [table]),
    )


def most_that_fit(sizes: dict[int, int]) -> int:
    return max((n for n, size in sizes.items() if size <= PACKET_DATA_SIZE), default=0)


def readings_per_attestation(policy: SendPolicy) -> int:
    """The most readings one attestation carries as the oracle sends it, computed offline."""
    program = NishatiProgram(Pubkey.from_string(IDL_PROGRAM_ID))
    market = Pubkey.new_unique()
    readings: list[tuple[SignedReading, Pubkey]] = []
    while True:
        reading = Reading.for_market(market, 1, 0, 0, 0)
        candidate = [*readings, (sign(reading, Ed25519PrivateKey.generate()), Pubkey.new_unique())]
        if attest_sizes(program, Keypair(), market, candidate, policy)[1] > PACKET_DATA_SIZE:
            return len(readings)
        readings = candidate
