"""Two ways to reach a chain behind one async interface: LiteSVM in-process, or JSON-RPC.

Programs, tests and the demo are written against :class:`Chain`; which backend runs them is a
fixture or a setting. Both backends send through :func:`send_transaction`, one procedure over
the few :class:`Node` primitives each of them provides, for a legacy transaction or, given
address lookup tables (:mod:`nishati_client.lookup`), a v0 one:

1. Simulate first, with the largest compute-unit limit, so a program error arrives with its logs.
2. Set the limit to the simulated units plus a margin, and the priority fee (:class:`SendPolicy`).
   The compute-budget instructions go after the caller's, so instruction indices (the one
   ``meter_attest`` takes for its Ed25519 instruction, the one an error names) do not move.
3. Submit, and confirm at the chain's commitment.
4. When a confirmation is lost or the RPC fails transiently, look the signature up (searching
   history) before anything else: if it landed, that is the outcome. While its blockhash is
   valid the same signed bytes are submitted again (one signature executes at most once). Only
   when the blockhash has expired and the signature is still not found is the transaction signed
   again with a fresh blockhash. If its status cannot be read, :class:`TransactionUnconfirmed`
   is raised rather than risking a second execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import based58
import httpx
import structlog
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment as RpcCommitment
from solana.rpc.core import RPCException
from solana.rpc.types import MemcmpOpts, TxOpts
from solders.account import Account
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.clock import Clock
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.sysvar import CLOCK
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import (
    InstructionErrorCustom,
    TransactionErrorInstructionError,
    TransactionErrorType,
    TransactionStatus,
)

from nishati_client.config import ClientSettings, Commitment
from nishati_client.errors import (
    AccountNotFound,
    ProgramNotDeployed,
    RpcError,
    RpcUnavailable,
    TransactionFailed,
    TransactionUnconfirmed,
    program_error,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")
AnyTransaction = Transaction | VersionedTransaction

# The runtime's ceiling for one transaction, and the size of a transaction's packet.
MAX_COMPUTE_UNIT_LIMIT = 1_400_000
PACKET_DATA_SIZE = 1_232
# The most addresses one getMultipleAccounts request may name.
MAX_ACCOUNTS_PER_REQUEST = 100
# The SlotHashes sysvar keeps this many of the latest slots.
MAX_SLOT_HASHES = 512
# What a lamport-per-signature fee is on every cluster today; used to check a payer can pay.
LAMPORTS_PER_SIGNATURE = 5_000


@dataclass(frozen=True)
class TxOutcome:
    """A confirmed transaction: its logs and compute units as the chain ran it, and the
    compute-unit limit it carried (``None``: no limit instruction, the runtime's default)."""

    signature: Signature
    logs: list[str]
    compute_units: int
    compute_unit_limit: int | None = None


@dataclass(frozen=True)
class RecentBlockhash:
    """A blockhash and the last block height at which a transaction using it can land."""

    blockhash: Hash
    last_valid_block_height: int


@dataclass(frozen=True)
class Executed:
    """A transaction as the chain ran or simulated it. ``logs`` and ``compute_units`` are
    ``None`` when the node knows the status but not the details."""

    err: TransactionErrorType | None
    logs: list[str] | None
    compute_units: int | None


@dataclass(frozen=True)
class SendPolicy:
    """How transactions are budgeted, priced and retried.

    The compute-unit limit is the simulated units plus ``compute_unit_margin_percent`` of them,
    and at least ``min_compute_unit_margin``. A transaction uses what its simulation did unless
    the state it reads changes in between (an offer a trade settled meanwhile is cancelled
    without being closed, a reading arrives first); the margin absorbs such branches, and an
    unused limit costs nothing unless a priority fee is paid on it. With the defaults, a
    ``market_pause`` (651 CU measured) gets 1,651 and three readings attested (21,125) 23,237.

    The priority fee in micro-lamports per compute unit is ``priority_fee_micro_lamports``, or,
    with ``priority_fee_percentile`` set, that percentile of the node's recent prioritization
    fees for the transaction's writable accounts if it is higher; never more than
    ``max_priority_fee_micro_lamports``.
    """

    compute_budget: bool = True
    compute_unit_margin_percent: int = 10
    min_compute_unit_margin: int = 1_000
    priority_fee_micro_lamports: int = 0
    priority_fee_percentile: int | None = None
    max_priority_fee_micro_lamports: int = 1_000_000
    # Fresh blockhashes tried in all, and submissions of one signed transaction.
    max_signings: int = 3
    max_submissions: int = 5
    retry_delay_secs: float = 0.25
    confirm_timeout_secs: float = 90.0
    poll_interval_secs: float = 0.2

    def __post_init__(self) -> None:
        if (
            self.priority_fee_percentile is not None
            and not 0 <= self.priority_fee_percentile <= 100
        ):
            raise ValueError("priority_fee_percentile must be between 0 and 100")
        if min(self.priority_fee_micro_lamports, self.compute_unit_margin_percent) < 0:
            raise ValueError("fees and margins cannot be negative")

    def compute_unit_limit(self, simulated_units: int) -> int:
        margin = max(
            simulated_units * self.compute_unit_margin_percent // 100, self.min_compute_unit_margin
        )
        return min(simulated_units + margin, MAX_COMPUTE_UNIT_LIMIT)

    def priority_fee(self, recent_fees: Sequence[int]) -> int:
        """The fee to pay, given the node's recent fees (ignored without a percentile)."""
        fee = self.priority_fee_micro_lamports
        if self.priority_fee_percentile is not None and recent_fees:
            ranked = sorted(recent_fees)
            rank = max(0, -(-len(ranked) * self.priority_fee_percentile // 100) - 1)
            fee = max(fee, ranked[rank])
        return min(fee, self.max_priority_fee_micro_lamports)

    @classmethod
    def from_settings(cls, settings: ClientSettings) -> SendPolicy:
        return cls(
            compute_unit_margin_percent=settings.compute_unit_margin_percent,
            priority_fee_micro_lamports=settings.priority_fee_micro_lamports,
            priority_fee_percentile=settings.priority_fee_percentile,
            max_priority_fee_micro_lamports=settings.max_priority_fee_micro_lamports,
        )

    @property
    def may_pay_priority(self) -> bool:
        return self.priority_fee_micro_lamports > 0 or self.priority_fee_percentile is not None


class AccountReader(Protocol):
    """A chain to read accounts from: all that reading its clock needs."""

    async def account(self, address: Pubkey) -> Account | None: ...


class Chain(AccountReader, Protocol):
    """What the client needs from a chain."""

    @property
    def policy(self) -> SendPolicy:
        """How sends are budgeted: callers that pack transactions size them with it."""
        ...

    async def send(
        self,
        instructions: Sequence[Instruction],
        signers: Sequence[Keypair],
        lookup_tables: Sequence[AddressLookupTableAccount] = (),
    ) -> TxOutcome:
        """Sends one transaction (the first signer pays), raising on failure; v0 when given
        lookup tables, which may hold only addresses usable in the current slot."""
        ...

    async def accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        """Many accounts at once, in the order asked (``None`` where there is none)."""
        ...


@runtime_checkable
class AccountLister(Protocol):
    """A chain that can list a program's accounts (JSON-RPC ``getProgramAccounts``)."""

    async def program_accounts(
        self, matching: Sequence[tuple[int, bytes]]
    ) -> list[tuple[Pubkey, Account]]:
        """The program's accounts whose data holds each ``(offset, bytes)``."""
        ...


class Node(Protocol):
    """The primitives :func:`send_transaction` needs; each backend provides them."""

    @property
    def program_id(self) -> Pubkey: ...

    @property
    def policy(self) -> SendPolicy: ...

    async def latest_blockhash(self) -> RecentBlockhash: ...

    async def simulate(self, tx: AnyTransaction) -> Executed: ...

    async def submit(self, tx: AnyTransaction) -> None:
        """Hands the signed transaction to the chain, without waiting for it."""
        ...

    async def confirm(self, signature: Signature, blockhash: RecentBlockhash) -> Executed | None:
        """Waits until the transaction is at the chain's commitment; ``None`` once its blockhash
        has expired without it. Raises :class:`RpcUnavailable` if it cannot tell."""
        ...

    async def lookup(self, signature: Signature) -> Executed | None:
        """The transaction if it landed, searching the chain's history; ``None`` if not."""
        ...

    async def blockhash_expired(self, blockhash: RecentBlockhash) -> bool: ...

    async def recent_priority_fees(self, writable: Sequence[Pubkey]) -> list[int]: ...


class SendsTransactions:
    """:meth:`Chain.send` for a :class:`Node`: :func:`send_transaction` over its primitives."""

    async def send(
        self: Node,
        instructions: Sequence[Instruction],
        signers: Sequence[Keypair],
        lookup_tables: Sequence[AddressLookupTableAccount] = (),
    ) -> TxOutcome:
        return await send_transaction(self, instructions, signers, lookup_tables)


async def _clock(chain: AccountReader) -> Clock:
    account = await chain.account(CLOCK)
    if account is None:
        raise AccountNotFound(f"no Clock sysvar at {CLOCK}")
    return Clock.from_bytes(bytes(account.data))


async def cluster_time(chain: AccountReader) -> int:
    """The cluster's Unix time from the Clock sysvar: the ``now`` the program checks against."""
    return (await _clock(chain)).unix_timestamp


async def cluster_slot(chain: AccountReader) -> int:
    """The slot of the Clock sysvar at the chain's commitment: a transaction sent now is
    processed in it or a later one."""
    return (await _clock(chain)).slot


async def check_program_deployed(chain: Chain, program_id: Pubkey) -> None:
    """Raises :class:`ProgramNotDeployed` unless ``program_id`` is an executable program here."""
    account = await chain.account(program_id)
    if account is None or not account.executable:
        raise ProgramNotDeployed(f"program {program_id} is not deployed on this cluster")


def raise_for_error(
    err: TransactionErrorType,
    logs: Sequence[str],
    instructions: Sequence[Instruction],
    program_id: Pubkey,
) -> None:
    """Raises the Nishati program's named error when one of its instructions failed with a
    custom code, else a generic failure that names the failing instruction."""
    if isinstance(err, TransactionErrorInstructionError):
        index = err.index
        failed = instructions[index].program_id if index < len(instructions) else None
        if isinstance(err.err, InstructionErrorCustom) and failed == program_id:
            raise program_error(err.err.code, logs)
        raise TransactionFailed(f"instruction {index} ({failed}) failed: {err.err}", logs)
    raise TransactionFailed(str(err), logs)


def compute_budget_instructions(limit: int, priority_fee: int) -> list[Instruction]:
    """The limit, and the price when there is one."""
    budget = [set_compute_unit_limit(limit)]
    if priority_fee > 0:
        budget.append(set_compute_unit_price(priority_fee))
    return budget


def _transaction(
    instructions: Sequence[Instruction],
    signers: Sequence[Keypair],
    blockhash: Hash,
    lookup_tables: Sequence[AddressLookupTableAccount],
) -> AnyTransaction:
    """Legacy without lookup tables; v0 with them, naming each account a table holds by a
    one-byte index instead of its 32-byte key (the rest stay static keys)."""
    payer = signers[0].pubkey()
    if not lookup_tables:
        message = Message.new_with_blockhash(list(instructions), payer, blockhash)
        return Transaction(list(signers), message, blockhash)
    compiled = MessageV0.try_compile(payer, list(instructions), list(lookup_tables), blockhash)
    return VersionedTransaction(compiled, list(signers))


def transaction_size(
    instructions: Sequence[Instruction],
    signers: Sequence[Keypair],
    policy: SendPolicy,
    lookup_tables: Sequence[AddressLookupTableAccount] = (),
) -> int:
    """Bytes of the transaction :func:`send_transaction` would build: with its compute-budget
    instructions when the policy adds them (the price counted whenever one may be paid)."""
    budget: list[Instruction] = []
    if policy.compute_budget:
        budget = compute_budget_instructions(MAX_COMPUTE_UNIT_LIMIT, int(policy.may_pay_priority))
    tx = _transaction([*instructions, *budget], signers, Hash.default(), lookup_tables)
    return len(bytes(tx))


def fits_in_packet(
    instructions: Sequence[Instruction],
    signers: Sequence[Keypair],
    policy: SendPolicy,
    lookup_tables: Sequence[AddressLookupTableAccount] = (),
) -> bool:
    return transaction_size(instructions, signers, policy, lookup_tables) <= PACKET_DATA_SIZE


async def _patiently(node: Node, what: str, call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, retried on transient RPC errors; if it never answers, the transaction's fate
    is unknown and :class:`TransactionUnconfirmed` says so."""
    delay = node.policy.retry_delay_secs
    for attempt in range(node.policy.max_submissions):
        try:
            return await call()
        except RpcUnavailable as error:
            if attempt + 1 == node.policy.max_submissions:
                raise TransactionUnconfirmed(f"{what}: {error}") from error
            log.warning(
                "rpc retried",
                call=what,
                error=str(error),
                attempt=attempt + 1,
                attempts=node.policy.max_submissions,
            )
            await asyncio.sleep(delay * 2**attempt)
    raise AssertionError("unreachable")


async def _submit_until_expired(
    node: Node, tx: AnyTransaction, blockhash: RecentBlockhash
) -> Executed | None:
    """Submits ``tx`` (again) until it is found; ``None`` once its blockhash expired and the
    signature is nowhere, so signing again cannot execute it twice."""
    signature = tx.signatures[0]
    for attempt in range(node.policy.max_submissions):
        try:
            await node.submit(tx)
            executed = await node.confirm(signature, blockhash)
            if executed is not None:
                return executed
        except RpcUnavailable as error:
            log.warning("submission unconfirmed", signature=str(signature), error=str(error))
        what = f"status of {signature}"
        executed = await _patiently(node, what, lambda: node.lookup(signature))
        if executed is not None:
            return executed
        expired = await _patiently(
            node, f"blockhash of {signature}", lambda: node.blockhash_expired(blockhash)
        )
        if expired:
            # It cannot land any more; it may have just before the blockhash expired.
            return await _patiently(node, what, lambda: node.lookup(signature))
        await asyncio.sleep(node.policy.retry_delay_secs * 2**attempt)
    raise TransactionUnconfirmed(
        f"{signature} was submitted {node.policy.max_submissions} times and is not confirmed; "
        "its blockhash is still valid, so it may yet land"
    )


async def send_transaction(
    node: Node,
    instructions: Sequence[Instruction],
    signers: Sequence[Keypair],
    lookup_tables: Sequence[AddressLookupTableAccount] = (),
) -> TxOutcome:
    """Sends one transaction as the module docstring describes; the first signer pays."""
    policy, program_id = node.policy, node.program_id
    for signing in range(policy.max_signings):
        blockhash = await node.latest_blockhash()
        budgeted = policy.compute_budget and fits_in_packet(
            instructions, signers, policy, lookup_tables
        )
        fee = 0
        if budgeted and policy.may_pay_priority:
            writable = {m.pubkey for ix in instructions for m in ix.accounts if m.is_writable}
            fee = policy.priority_fee(await node.recent_priority_fees(sorted(writable, key=bytes)))
        probe = list(instructions)
        if budgeted:
            probe += compute_budget_instructions(MAX_COMPUTE_UNIT_LIMIT, fee)
        simulated = await node.simulate(
            _transaction(probe, signers, blockhash.blockhash, lookup_tables)
        )
        sim_logs = simulated.logs or []
        if simulated.err is not None:
            raise_for_error(simulated.err, sim_logs, probe, program_id)
        limit = None
        final = probe
        if budgeted:
            limit = policy.compute_unit_limit(simulated.compute_units or 0)
            final = [*instructions, *compute_budget_instructions(limit, fee)]
        tx = _transaction(final, signers, blockhash.blockhash, lookup_tables)
        executed = await _submit_until_expired(node, tx, blockhash)
        if executed is not None:
            logs = executed.logs if executed.logs is not None else sim_logs
            if executed.err is not None:
                raise_for_error(executed.err, logs, final, program_id)
            units = executed.compute_units
            return TxOutcome(
                tx.signatures[0],
                logs,
                units if units is not None else simulated.compute_units or 0,
                limit,
            )
        log.warning(
            "transaction expired unseen",
            signature=str(tx.signatures[0]),
            signing=signing + 2,
            signings=policy.max_signings,
        )
    raise TransactionUnconfirmed(
        f"the transaction did not land with any of {policy.max_signings} blockhashes"
    )


def _executed(result: TransactionMetadata | FailedTransactionMetadata) -> Executed:
    if isinstance(result, FailedTransactionMetadata):
        meta = result.meta()
        return Executed(result.err(), list(meta.logs()), meta.compute_units_consumed())
    return Executed(None, list(result.logs()), result.compute_units_consumed())


class LiteSvmChain(SendsTransactions):
    """The program in an in-process LiteSVM, for fast tests and the embedded demo.

    Nothing competes for compute in-process, so the default policy adds no compute-budget
    instructions: outcomes report the units of the caller's instructions alone (the benchmark's
    numbers). LiteSVM accepts only its latest blockhash and moves to a new one after every
    submission, so a second submission of a transaction finds its blockhash expired. Each
    submission also ends its slot (:meth:`_end_slot`), as a cluster's blocks would, so lookup
    tables created and extended here become usable as on a cluster.
    """

    DEFAULT_POLICY = SendPolicy(compute_budget=False)

    def __init__(
        self, program_id: Pubkey, program_so: Path, policy: SendPolicy = DEFAULT_POLICY
    ) -> None:
        self.program_id = program_id
        self.policy = policy
        self.svm = LiteSVM()
        self.svm.add_program_from_file(program_id, program_so)

    def fund(self, address: Pubkey, lamports: int) -> None:
        self.svm.airdrop(address, lamports)

    def set_unix_time(self, unix_timestamp: int) -> None:
        """Moves the Clock sysvar's Unix time (LiteSVM's stays put unless moved): the chain
        time the program reads, as a cluster's would pass."""
        clock = self.svm.get_clock()
        self.svm.set_clock(
            Clock(
                clock.slot,
                clock.epoch_start_timestamp,
                clock.epoch,
                clock.leader_schedule_epoch,
                unix_timestamp,
            )
        )

    def _end_slot(self) -> None:
        """Moves to the next slot, as a cluster's time would: the slot left gets a hash in
        SlotHashes (a lookup table can be created at it), and what was added to lookup tables
        in it becomes usable."""
        slot = self.svm.get_clock().slot
        hashes = self.svm.get_slot_hashes()
        if not hashes or hashes[0][0] != slot:
            hashes = [(slot, Hash.new_unique()), *hashes][:MAX_SLOT_HASHES]
            self.svm.set_slot_hashes(hashes)
        self.svm.warp_to_slot(slot + 1)

    async def account(self, address: Pubkey) -> Account | None:
        account = self.svm.get_account(address)
        # LiteSVM keeps a closed account as an empty one; a cluster has none at the address.
        return None if account is None or account.lamports == 0 else account

    async def accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        return [await self.account(address) for address in addresses]

    # Node primitives

    async def latest_blockhash(self) -> RecentBlockhash:
        return RecentBlockhash(self.svm.latest_blockhash(), self.svm.get_clock().slot)

    async def simulate(self, tx: AnyTransaction) -> Executed:
        result = self.svm.simulate_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            return _executed(result)
        return _executed(result.meta())

    async def submit(self, tx: AnyTransaction) -> None:
        # A transaction that was not processed (stale blockhash, already processed) stays out
        # of the history; lookup then reports what did happen.
        self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        self._end_slot()

    async def confirm(self, signature: Signature, blockhash: RecentBlockhash) -> Executed | None:
        return await self.lookup(signature)

    async def lookup(self, signature: Signature) -> Executed | None:
        result = self.svm.get_transaction(signature)
        return None if result is None else _executed(result)

    async def blockhash_expired(self, blockhash: RecentBlockhash) -> bool:
        return blockhash.blockhash != self.svm.latest_blockhash()

    async def recent_priority_fees(self, writable: Sequence[Pubkey]) -> list[int]:
        return []


def rpc_error(what: str, error: BaseException) -> RpcError:
    """The client's error for a failed RPC request: transient ones (timeouts, dropped
    connections, HTTP 429 and 5xx) are :class:`RpcUnavailable`."""
    cause = error.__cause__ if isinstance(error, SolanaRpcException) else error
    if isinstance(cause, httpx.HTTPStatusError):
        status = cause.response.status_code
        reason = f"HTTP {status} {cause.response.reason_phrase}"
        if status == 429 or status >= 500:
            return RpcUnavailable(f"{what}: {reason}")
        return RpcError(f"{what}: {reason}")
    if isinstance(cause, httpx.TransportError):
        return RpcUnavailable(f"{what}: {type(cause).__name__} {cause}".rstrip())
    return RpcError(f"{what}: {cause}")


class RpcChain(SendsTransactions):
    """A JSON-RPC node. Each send is simulated first so a program error arrives with its logs."""

    def __init__(
        self,
        rpc_url: str,
        program_id: Pubkey,
        commitment: Commitment = Commitment.confirmed,
        policy: SendPolicy | None = None,
        timeout_secs: float = 10,
    ) -> None:
        self.rpc_url = rpc_url
        self.program_id = program_id
        self.policy = policy or SendPolicy()
        self.commitment = RpcCommitment(commitment.value)
        # getTransaction and expiry are read at confirmed at least ("processed" is not final).
        self.read_commitment = RpcCommitment(
            Commitment.confirmed.value if commitment is Commitment.processed else commitment.value
        )
        self._rank = list(Commitment).index(commitment)
        self.client = AsyncClient(rpc_url, commitment=self.commitment, timeout=timeout_secs)
        self._http: httpx.AsyncClient | None = None

    async def close(self) -> None:
        await self.client.close()
        if self._http is not None:
            await self._http.aclose()

    async def _rpc(self, what: str, request: Awaitable[T]) -> T:
        try:
            return await request
        except (SolanaRpcException, httpx.HTTPError) as error:
            raise rpc_error(what, error) from error
        except RPCException as error:
            raise RpcError(f"{what}: {error}") from error

    async def account(self, address: Pubkey) -> Account | None:
        return (await self._rpc("getAccountInfo", self.client.get_account_info(address))).value

    async def accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        found: list[Account | None] = []
        for start in range(0, len(addresses), MAX_ACCOUNTS_PER_REQUEST):
            chunk = list(addresses[start : start + MAX_ACCOUNTS_PER_REQUEST])
            request = self.client.get_multiple_accounts(chunk, encoding="base64")
            found += (await self._rpc("getMultipleAccounts", request)).value
        return found

    async def balance(self, address: Pubkey) -> int:
        return (await self._rpc("getBalance", self.client.get_balance(address))).value

    async def airdrop(self, address: Pubkey, lamports: int) -> Signature:
        """``lamports`` from the cluster's faucet (``requestAirdrop``), confirmed at the chain's
        commitment. Local and test clusters have a faucet; others answer :class:`RpcError`."""
        request = self.client.request_airdrop(address, lamports, self.commitment)
        signature = (await self._rpc("requestAirdrop", request)).value
        executed = await self.confirm(signature, None)
        if executed is not None and executed.err is not None:
            raise TransactionFailed(
                f"airdrop {signature} failed: {executed.err}", executed.logs or []
            )
        return signature

    async def program_accounts(
        self, matching: Sequence[tuple[int, bytes]]
    ) -> list[tuple[Pubkey, Account]]:
        filters: list[int | MemcmpOpts] = [
            MemcmpOpts(offset=offset, bytes=based58.b58encode(value).decode())
            for offset, value in matching
        ]
        response = await self._rpc(
            "getProgramAccounts",
            self.client.get_program_accounts(self.program_id, encoding="base64", filters=filters),
        )
        return [(keyed.pubkey, keyed.account) for keyed in response.value]

    # Node primitives

    async def latest_blockhash(self) -> RecentBlockhash:
        value = (await self._rpc("getLatestBlockhash", self.client.get_latest_blockhash())).value
        return RecentBlockhash(value.blockhash, value.last_valid_block_height)

    async def simulate(self, tx: AnyTransaction) -> Executed:
        value = (
            await self._rpc(
                "simulateTransaction", self.client.simulate_transaction(tx, sig_verify=True)
            )
        ).value
        return Executed(value.err, list(value.logs or []), value.units_consumed)

    async def submit(self, tx: AnyTransaction) -> None:
        opts = TxOpts(skip_preflight=True, preflight_commitment=self.commitment)
        await self._rpc("sendTransaction", self.client.send_raw_transaction(bytes(tx), opts=opts))

    async def _status(self, signature: Signature, search_history: bool) -> TransactionStatus | None:
        response = await self._rpc(
            "getSignatureStatuses",
            self.client.get_signature_statuses(
                [signature], search_transaction_history=search_history
            ),
        )
        return response.value[0]

    def _committed(self, status: TransactionStatus) -> bool:
        level = status.confirmation_status
        return level is not None and int(level) >= self._rank

    async def _details(self, signature: Signature, status: TransactionStatus) -> Executed:
        response = await self._rpc(
            "getTransaction",
            self.client.get_transaction(
                signature, commitment=self.read_commitment, max_supported_transaction_version=0
            ),
        )
        meta = response.value.transaction.meta if response.value is not None else None
        if meta is None:
            return Executed(status.err, None, None)
        return Executed(meta.err, list(meta.log_messages or []), meta.compute_units_consumed)

    async def confirm(
        self, signature: Signature, blockhash: RecentBlockhash | None
    ) -> Executed | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.confirm_timeout_secs
        while True:
            status = await self._status(signature, search_history=False)
            if status is not None and self._committed(status):
                return await self._details(signature, status)
            if status is None and blockhash is not None and await self.blockhash_expired(blockhash):
                return None
            if loop.time() > deadline:
                raise RpcUnavailable(
                    f"{signature} not confirmed within {self.policy.confirm_timeout_secs:g} s"
                )
            await asyncio.sleep(self.policy.poll_interval_secs)

    async def lookup(self, signature: Signature) -> Executed | None:
        status = await self._status(signature, search_history=True)
        if status is None:
            return None
        if self._committed(status):
            return await self._details(signature, status)
        # Seen but not yet at the commitment: wait for it rather than submit anything.
        return await self.confirm(signature, None)

    async def blockhash_expired(self, blockhash: RecentBlockhash) -> bool:
        height = await self._rpc(
            "getBlockHeight", self.client.get_block_height(self.read_commitment)
        )
        return height.value > blockhash.last_valid_block_height

    async def recent_priority_fees(self, writable: Sequence[Pubkey]) -> list[int]:
        """``getRecentPrioritizationFees`` (solana-py 0.36 has no method for it)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10)
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "getRecentPrioritizationFees",
            "params": [[str(address) for address in writable]],
        }

        async def request() -> Any:
            assert self._http is not None
            response = await self._http.post(self.rpc_url, json=body)
            response.raise_for_status()
            return response.json()

        reply = await self._rpc("getRecentPrioritizationFees", request())
        if "error" in reply:
            raise RpcError(f"getRecentPrioritizationFees: {reply['error'].get('message')}")
        return [int(entry["prioritizationFee"]) for entry in reply.get("result") or []]
