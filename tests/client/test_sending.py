"""How transactions are sent: compute budget, priority fee, and retries that never execute twice.

The retry rule is tested on LiteSVM through :class:`Unreliable`, a chain that executes what it is
given but loses confirmations, submissions or status reads on request. LiteSVM moves to a new
blockhash after every submission, so a sender that signed again after a lost confirmation would
execute the transaction a second time: these tests would see it in the balances.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import httpx
import pytest
from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from structlog.testing import capture_logs

from nishati_client import (
    Chain,
    ClientSettings,
    LiteSvmChain,
    NishatiClient,
    NishatiProgramError,
    ProgramNotDeployed,
    RpcChain,
    RpcError,
    RpcUnavailable,
    SendPolicy,
    TransactionFailed,
    TransactionUnconfirmed,
    TxOutcome,
)
from nishati_client.chain import (
    MAX_COMPUTE_UNIT_LIMIT,
    PACKET_DATA_SIZE,
    AnyTransaction,
    Executed,
    Node,
    RecentBlockhash,
    SendsTransactions,
    check_program_deployed,
    fits_in_packet,
    rpc_error,
    transaction_size,
)
from nishati_client.errors import ERROR_CODES
from nishati_dev.sandbox import Harness, fund, lamports, open_market

FAST = SendPolicy(compute_budget=False, retry_delay_secs=0, poll_interval_secs=0.05)


@dataclass
class Unreliable(SendsTransactions):
    """A chain that executes what it is given but loses what the test asks it to lose."""

    inner: Node
    lose_confirmations: int = 0
    lose_submissions: int = 0  # before the chain sees the transaction
    drop_submissions: int = 0  # the chain never runs it, and its blockhash expires meanwhile
    lose_lookups: int = 0
    submitted: list[Signature] = field(default_factory=list)

    @property
    def program_id(self) -> Pubkey:
        return self.inner.program_id

    @property
    def policy(self) -> SendPolicy:
        return replace(self.inner.policy, retry_delay_secs=0)

    async def account(self, address: Pubkey) -> Account | None:
        assert isinstance(self.inner, LiteSvmChain | RpcChain)
        return await self.inner.account(address)

    async def accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        assert isinstance(self.inner, LiteSvmChain | RpcChain)
        return await self.inner.accounts(addresses)

    async def latest_blockhash(self) -> RecentBlockhash:
        return await self.inner.latest_blockhash()

    async def simulate(self, tx: AnyTransaction) -> Executed:
        return await self.inner.simulate(tx)

    async def submit(self, tx: AnyTransaction) -> None:
        self.submitted.append(tx.signatures[0])
        if self.lose_submissions:
            self.lose_submissions -= 1
            raise RpcUnavailable("sendTransaction: ConnectError connection reset by peer")
        if self.drop_submissions:
            self.drop_submissions -= 1
            assert isinstance(self.inner, LiteSvmChain)
            self.inner.svm.expire_blockhash()
            return
        await self.inner.submit(tx)

    async def confirm(self, signature: Signature, blockhash: RecentBlockhash) -> Executed | None:
        executed = await self.inner.confirm(signature, blockhash)
        if self.lose_confirmations:
            self.lose_confirmations -= 1
            raise RpcUnavailable("getSignatureStatuses: ReadTimeout")
        return executed

    async def lookup(self, signature: Signature) -> Executed | None:
        if self.lose_lookups:
            self.lose_lookups -= 1
            raise RpcUnavailable("getSignatureStatuses: HTTP 503 Service Unavailable")
        return await self.inner.lookup(signature)

    async def blockhash_expired(self, blockhash: RecentBlockhash) -> bool:
        return await self.inner.blockhash_expired(blockhash)

    async def recent_priority_fees(self, writable: Sequence[Pubkey]) -> list[int]:
        return await self.inner.recent_priority_fees(writable)


def unreliable(h: Harness, **losses: int) -> tuple[Unreliable, Harness]:
    chain = Unreliable(h.chain, **losses)  # type: ignore[arg-type]
    program_id = h.client.program.program_id
    return chain, Harness(chain, h.payer, NishatiClient(chain, program_id), h.litesvm)


async def pay(chain: Chain, payer: Keypair, to: Pubkey, amount: int) -> TxOutcome:
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=amount))
    return await chain.send([ix], [payer])


async def test_a_lost_confirmation_finds_the_transaction_instead_of_sending_it_again(
    litesvm: Harness,
) -> None:
    chain, _ = unreliable(litesvm, lose_confirmations=1)
    recipient = Pubkey.new_unique()

    outcome = await pay(chain, litesvm.payer, recipient, 1_000_000)

    assert await lamports(litesvm, recipient) == 1_000_000
    assert chain.submitted == [outcome.signature]


async def test_a_lost_confirmation_of_an_offer_creates_one_offer(litesvm: Harness) -> None:
    market = await open_market(litesvm)
    seller = await market.register()
    await market.mint(seller, 1_000)
    chain, shaky = unreliable(litesvm, lose_confirmations=1)

    created = await shaky.client.offer_create(
        payer=litesvm.payer,
        authority=seller.authority,
        household=await market.household(seller),
        wh=400,
        price_cents_per_kwh=2_000,
        expires_at=await market.now() + 600,
    )

    assert (await market.household(seller)).next_offer_id == 1
    assert await market.balance(seller) == 600
    assert (
        await litesvm.client.energy_balance(litesvm.client.program.escrow(created.address)) == 400
    )
    assert chain.submitted == [created.outcome.signature]


async def test_a_submission_lost_before_the_chain_saw_it_is_resent_as_the_same_bytes(
    litesvm: Harness,
) -> None:
    chain, _ = unreliable(litesvm, lose_submissions=2)
    recipient = Pubkey.new_unique()

    outcome = await pay(chain, litesvm.payer, recipient, 5_000_000)

    assert await lamports(litesvm, recipient) == 5_000_000
    assert chain.submitted == [outcome.signature] * 3


async def test_a_transaction_that_expired_unseen_is_signed_again_and_runs_once(
    litesvm: Harness,
) -> None:
    chain, _ = unreliable(litesvm, drop_submissions=1)
    recipient = Pubkey.new_unique()

    outcome = await pay(chain, litesvm.payer, recipient, 7_000_000)

    assert await lamports(litesvm, recipient) == 7_000_000
    assert len(chain.submitted) == 2
    assert chain.submitted[0] != chain.submitted[1] == outcome.signature


async def test_an_unreadable_status_is_reported_not_resent(litesvm: Harness) -> None:
    chain, _ = unreliable(litesvm, lose_confirmations=1, lose_lookups=100)
    recipient = Pubkey.new_unique()

    with pytest.raises(TransactionUnconfirmed, match="status of"):
        await pay(chain, litesvm.payer, recipient, 3_000_000)

    # It did execute, once; nothing was signed again.
    assert await lamports(litesvm, recipient) == 3_000_000
    assert len(set(chain.submitted)) == 1


async def test_a_transient_status_error_is_retried(litesvm: Harness) -> None:
    chain, _ = unreliable(litesvm, lose_confirmations=1, lose_lookups=2)
    recipient = Pubkey.new_unique()

    outcome = await pay(chain, litesvm.payer, recipient, 2_000_000)

    assert await lamports(litesvm, recipient) == 2_000_000
    assert chain.submitted == [outcome.signature]


async def test_each_retry_is_logged_with_its_fields(litesvm: Harness) -> None:
    chain, _ = unreliable(litesvm, lose_confirmations=1, lose_lookups=1)
    with capture_logs() as logs:
        outcome = await pay(chain, litesvm.payer, Pubkey.new_unique(), 1_000_000)
    signature = str(outcome.signature)
    assert logs == [
        {
            "event": "submission unconfirmed",
            "log_level": "warning",
            "signature": signature,
            "error": "getSignatureStatuses: ReadTimeout",
        },
        {
            "event": "rpc retried",
            "log_level": "warning",
            "call": f"status of {signature}",
            "error": "getSignatureStatuses: HTTP 503 Service Unavailable",
            "attempt": 1,
            "attempts": chain.policy.max_submissions,
        },
    ]


async def test_a_program_error_found_after_a_lost_confirmation_is_raised_by_name(
    litesvm: Harness,
) -> None:
    """The transaction failed on chain (its simulation passed, the state changed before it ran):
    the lookup brings back the failure, with the program's error name."""
    market = await open_market(litesvm)
    await fund(litesvm, market.admin.pubkey(), 10**8)

    class PausesFirst(Unreliable):
        async def submit(self, tx: AnyTransaction) -> None:
            if not self.submitted:
                await litesvm.client.market_pause(
                    payer=market.admin, admin=market.admin, market=market.address
                )
            await super().submit(tx)

    chain = PausesFirst(litesvm.chain, lose_confirmations=1)  # type: ignore[arg-type]
    client = NishatiClient(chain, litesvm.client.program.program_id)
    with pytest.raises(NishatiProgramError) as refused:
        await client.market_pause(payer=litesvm.payer, admin=market.admin, market=market.address)
    assert refused.value.name == "MarketPaused"
    assert len(chain.submitted) == 1


@pytest.mark.rpc
async def test_a_lost_confirmation_on_the_json_rpc_validator(
    rpc_url: str, rpc_payer: Keypair, program_id: Pubkey
) -> None:
    """The same rule against a real node: ``getSignatureStatuses`` with history finds it."""
    rpc = RpcChain(rpc_url, program_id, policy=SendPolicy(retry_delay_secs=0))
    try:
        chain = Unreliable(rpc, lose_confirmations=1)
        recipient = Pubkey.new_unique()
        outcome = await pay(chain, rpc_payer, recipient, 1_500_000)
        assert (await rpc.balance(recipient)) == 1_500_000
        assert chain.submitted == [outcome.signature]
        assert any("11111111111111111111111111111111 success" in line for line in outcome.logs)
        assert outcome.compute_unit_limit == SendPolicy().compute_unit_limit(outcome.compute_units)
    finally:
        await rpc.close()


# Compute budget and priority fee


def budgeted(h: Harness, policy: SendPolicy) -> Harness:
    assert h.litesvm is not None
    h.litesvm.policy = policy
    return h


async def test_the_compute_unit_limit_is_the_simulated_units_plus_the_margin(
    litesvm: Harness,
) -> None:
    h = budgeted(litesvm, SendPolicy())
    market = await open_market(h)

    outcome = await h.client.market_pause(payer=h.payer, admin=market.admin, market=market.address)

    assert outcome.compute_unit_limit == outcome.compute_units + 1_000
    # The budget follows the program's instruction, so indices the program sees stay put.
    invoked = [line.split()[1] for line in outcome.logs if line.endswith("invoke [1]")]
    assert invoked == [
        str(h.client.program.program_id),
        "ComputeBudget111111111111111111111111111111",
    ]


async def test_attestation_works_with_the_compute_budget_after_it(litesvm: Harness) -> None:
    h = budgeted(litesvm, SendPolicy())
    market = await open_market(h)
    first, second = await market.register(), await market.register(custodial=True)
    await market.mint(first, 300)
    await market.attest((second, second.meter.read(await market.now())))
    await market.until_exportable(second, 70)
    now = await market.now()

    outcome = await market.attest(
        (first, first.meter.read(now, exported_wh=50)),
        (second, second.meter.read(now, exported_wh=70)),
    )

    assert (await market.balance(first), await market.balance(second)) == (350, 70)
    assert outcome.compute_unit_limit == SendPolicy().compute_unit_limit(outcome.compute_units)


async def test_a_program_error_keeps_its_name_with_the_compute_budget(litesvm: Harness) -> None:
    h = budgeted(litesvm, SendPolicy())
    market = await open_market(h)
    with pytest.raises(NishatiProgramError) as refused:
        await h.client.market_resume(payer=h.payer, admin=market.admin, market=market.address)
    assert refused.value.name == "MarketNotPaused"
    assert refused.value.code == ERROR_CODES["MarketNotPaused"]


async def test_a_priority_fee_adds_its_price_instruction(litesvm: Harness) -> None:
    h = budgeted(litesvm, SendPolicy(priority_fee_micro_lamports=250_000))

    outcome = await pay(h.chain, h.payer, Pubkey.new_unique(), 1_000_000)

    budget = [
        line
        for line in outcome.logs
        if line.startswith("Program ComputeBudget") and "invoke" in line
    ]
    assert len(budget) == 2


@pytest.mark.rpc
async def test_a_priority_fee_is_paid_on_the_limit(
    rpc_url: str, rpc_payer: Keypair, program_id: Pubkey
) -> None:
    chain = RpcChain(rpc_url, program_id, policy=SendPolicy(priority_fee_micro_lamports=250_000))
    try:
        payer = Keypair()
        await pay(chain, rpc_payer, payer.pubkey(), 10**9)
        before = await chain.balance(payer.pubkey())

        outcome = await pay(chain, payer, Pubkey.new_unique(), 1_000_000)

        assert outcome.compute_unit_limit is not None
        priority = -(-250_000 * outcome.compute_unit_limit // 1_000_000)
        assert before - await chain.balance(payer.pubkey()) == 1_000_000 + 5_000 + priority
    finally:
        await chain.close()


def test_the_compute_unit_margin() -> None:
    policy = SendPolicy()
    assert policy.compute_unit_limit(651) == 1_651
    assert policy.compute_unit_limit(21_125) == 23_237
    assert policy.compute_unit_limit(MAX_COMPUTE_UNIT_LIMIT - 10) == MAX_COMPUTE_UNIT_LIMIT
    assert SendPolicy(compute_unit_margin_percent=50).compute_unit_limit(10_000) == 15_000


def test_the_priority_fee_from_recent_fees() -> None:
    fixed = SendPolicy(priority_fee_micro_lamports=100)
    assert fixed.priority_fee([5_000, 9_000]) == 100
    recent = SendPolicy(priority_fee_micro_lamports=100, priority_fee_percentile=75)
    assert recent.priority_fee([]) == 100
    assert recent.priority_fee([0, 0, 0, 0]) == 100
    assert recent.priority_fee([10, 20, 30, 40, 500, 600, 700, 800]) == 600
    assert recent.priority_fee([10_000_000]) == recent.max_priority_fee_micro_lamports
    with pytest.raises(ValueError, match="percentile"):
        SendPolicy(priority_fee_percentile=101)


def test_the_size_counts_the_compute_budget() -> None:
    payer = Keypair()
    ix = transfer(
        TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=1)
    )
    bare = transaction_size([ix], [payer], SendPolicy(compute_budget=False))
    limit_only = transaction_size([ix], [payer], SendPolicy())
    priced = transaction_size([ix], [payer], SendPolicy(priority_fee_micro_lamports=1))
    assert bare < limit_only < priced
    assert fits_in_packet([ix], [payer], SendPolicy(priority_fee_micro_lamports=1))
    assert priced - bare < 60 < PACKET_DATA_SIZE


async def test_a_transaction_too_big_for_the_budget_is_sent_without_it(litesvm: Harness) -> None:
    h = budgeted(litesvm, SendPolicy())
    payer = h.payer
    ixs = [
        transfer(
            TransferParams(
                from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=10**6
            )
        )
        for _ in range(20)
    ]
    while fits_in_packet(ixs, [payer], SendPolicy()):
        ixs.append(ixs[0])
    assert fits_in_packet(ixs, [payer], SendPolicy(compute_budget=False))

    outcome = await h.chain.send(ixs, [payer])

    assert outcome.compute_unit_limit is None


# Errors


def failed_request(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://node")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError("failed", request=request, response=response)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (httpx.ReadTimeout("timed out"), True),
        (httpx.ConnectError("connection refused"), True),
        (httpx.RemoteProtocolError("connection reset"), True),
        (failed_request(429), True),
        (failed_request(502), True),
        (failed_request(503), True),
        (failed_request(403), False),
        (failed_request(404), False),
    ],
)
def test_transient_rpc_errors_are_told_apart(error: Exception, transient: bool) -> None:
    translated = rpc_error("getLatestBlockhash", error)
    assert isinstance(translated, RpcError)
    assert isinstance(translated, RpcUnavailable) is transient
    assert str(translated).startswith("getLatestBlockhash: ")


async def test_an_unanswering_rpc_url_is_unavailable(program_id: Pubkey) -> None:
    chain = RpcChain("http://127.0.0.1:9", program_id, timeout_secs=2)
    try:
        with pytest.raises(RpcUnavailable, match="getAccountInfo: ConnectError"):
            await chain.account(program_id)
    finally:
        await chain.close()


async def test_the_program_is_deployed_or_this_is_the_wrong_cluster(
    litesvm: Harness, settings: ClientSettings
) -> None:
    await check_program_deployed(litesvm.chain, litesvm.client.program.program_id)
    with pytest.raises(ProgramNotDeployed):
        await check_program_deployed(litesvm.chain, Pubkey.new_unique())
    # An ordinary account is no program either.
    with pytest.raises(ProgramNotDeployed):
        await check_program_deployed(litesvm.chain, litesvm.payer.pubkey())


async def test_a_failure_outside_the_program_names_the_instruction(litesvm: Harness) -> None:
    poor = Keypair()
    await fund(litesvm, poor.pubkey(), 1_000_000)
    with pytest.raises(TransactionFailed) as failed:
        await pay(litesvm.chain, poor, Pubkey.new_unique(), 10**9)
    assert not isinstance(failed.value, NishatiProgramError)
    assert failed.value.reason.startswith("instruction 0 (11111111111111111111111111111111)")
    assert any("insufficient lamports" in line for line in failed.value.logs)
