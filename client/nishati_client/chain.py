"""Two ways to reach a chain behind one async interface: LiteSVM in-process, or JSON-RPC.

Programs, tests and the demo are written against :class:`Chain`; which backend runs them is a
fixture or a setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment as RpcCommitment
from solana.rpc.types import TxOpts
from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.sysvar import CLOCK
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    InstructionErrorCustom,
    TransactionErrorInstructionError,
    TransactionErrorType,
)

from nishati_client.config import Commitment
from nishati_client.errors import AccountNotFound, TransactionFailed, program_error


@dataclass(frozen=True)
class TxOutcome:
    signature: Signature
    logs: list[str]
    compute_units: int


class Chain(Protocol):
    """What the client needs from a chain."""

    async def send(
        self, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> TxOutcome:
        """Sends one transaction (the first signer pays), raising on failure."""
        ...

    async def account(self, address: Pubkey) -> Account | None: ...


async def cluster_time(chain: Chain) -> int:
    """The cluster's Unix time from the Clock sysvar: the ``now`` the program checks against."""
    account = await chain.account(CLOCK)
    if account is None:
        raise AccountNotFound(f"no Clock sysvar at {CLOCK}")
    return Clock.from_bytes(bytes(account.data)).unix_timestamp


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


def _transaction(
    instructions: Sequence[Instruction], signers: Sequence[Keypair], blockhash: Hash
) -> Transaction:
    message = Message.new_with_blockhash(list(instructions), signers[0].pubkey(), blockhash)
    return Transaction(list(signers), message, blockhash)


class LiteSvmChain:
    """The program in an in-process LiteSVM, for fast tests and the embedded demo."""

    def __init__(self, program_id: Pubkey, program_so: Path) -> None:
        self.program_id = program_id
        self.svm = LiteSVM()
        self.svm.add_program_from_file(program_id, program_so)

    def fund(self, address: Pubkey, lamports: int) -> None:
        self.svm.airdrop(address, lamports)

    async def send(
        self, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> TxOutcome:
        tx = _transaction(instructions, signers, self.svm.latest_blockhash())
        result = self.svm.send_transaction(tx)
        # A new blockhash per transaction lets a test send the same instructions twice.
        self.svm.expire_blockhash()
        if isinstance(result, FailedTransactionMetadata):
            raise_for_error(result.err(), result.meta().logs(), instructions, self.program_id)
            raise AssertionError("unreachable")
        return TxOutcome(result.signature(), list(result.logs()), result.compute_units_consumed())

    async def account(self, address: Pubkey) -> Account | None:
        account = self.svm.get_account(address)
        # LiteSVM keeps a closed account as an empty one; a cluster has none at the address.
        return None if account is None or account.lamports == 0 else account


class RpcChain:
    """A JSON-RPC node. Each send is simulated first so a program error arrives with its logs."""

    def __init__(
        self, rpc_url: str, program_id: Pubkey, commitment: Commitment = Commitment.confirmed
    ) -> None:
        self.program_id = program_id
        self.commitment = RpcCommitment(commitment.value)
        self.client = AsyncClient(rpc_url, commitment=self.commitment)

    async def close(self) -> None:
        await self.client.close()

    async def send(
        self, instructions: Sequence[Instruction], signers: Sequence[Keypair]
    ) -> TxOutcome:
        blockhash = (await self.client.get_latest_blockhash()).value.blockhash
        tx = _transaction(instructions, signers, blockhash)
        simulated = (await self.client.simulate_transaction(tx, sig_verify=True)).value
        logs = list(simulated.logs or [])
        if simulated.err is not None:
            raise_for_error(simulated.err, logs, instructions, self.program_id)
        sent = await self.client.send_raw_transaction(
            bytes(tx), opts=TxOpts(skip_preflight=True, preflight_commitment=self.commitment)
        )
        confirmed = await self.client.confirm_transaction(sent.value, self.commitment)
        status = confirmed.value[0]
        if status is not None and status.err is not None:
            raise_for_error(status.err, logs, instructions, self.program_id)
        return TxOutcome(sent.value, logs, simulated.units_consumed or 0)

    async def account(self, address: Pubkey) -> Account | None:
        return (await self.client.get_account_info(address)).value
