"""What every command shares: the session the root options made, and :func:`in_session`, which
hands it to a command and runs the command's coroutine.

A command is a plain or ``async`` function whose first parameter is the :class:`Session`; its
other parameters are typer's. ``await session.connect()`` gives it the program on the cluster,
checked to answer (and, with ``paying``, that the signer can pay a fee), ``session.chain()`` the
cluster's JSON-RPC alone, ``session.oracle()`` the oracle's HTTP API signed by the keypair; each
is closed when the command ends. Errors propagate to
:func:`nishati_client.cli.main`, which turns each into one line and an exit code.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import typer
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.chain import (
    LAMPORTS_PER_SIGNATURE,
    RpcChain,
    SendPolicy,
    check_program_deployed,
)
from nishati_client.config import ClientSettings
from nishati_client.errors import AccountNotFound, AccountTypeMismatch, ProgramNotDeployed, RpcError
from nishati_client.keys import load_keypair
from nishati_client.oracle_api import OracleApi
from nishati_client.pda import market_address
from nishati_client.program import NishatiClient

P = ParamSpec("P")
T = TypeVar("T")


class CliError(Exception):
    """A failure the user can act on; shown as one line."""


@dataclass
class Session:
    """What the root options decided, shared by every command."""

    settings: ClientSettings
    keypair_path: Path | None
    _signer: Keypair | None = field(default=None, init=False)
    _resources: AsyncExitStack = field(default_factory=AsyncExitStack, init=False)

    @property
    def program_id(self) -> Pubkey:
        try:
            return Pubkey.from_string(self.settings.program_id)
        except ValueError:
            raise CliError(f"program id {self.settings.program_id!r} is not a public key") from None

    @property
    def signer(self) -> Keypair:
        if self._signer is None:
            if self.keypair_path is None:
                raise CliError("no keypair: pass --keypair PATH or set NISHATI_KEYPAIR")
            self._signer = load_keypair(self.keypair_path)
        return self._signer

    def market(self, ref: str) -> Pubkey:
        """A market by address or by numeric id."""
        ref = ref.strip()
        if ref.isdigit():
            if not ref.isascii():
                raise CliError(f"market id {ref!r} is not written in the digits 0-9")
            if int(ref) >= 2**64:
                raise CliError(f"market id {ref} does not fit in 64 bits")
            return market_address(self.program_id, int(ref))[0]
        try:
            return Pubkey.from_string(ref)
        except ValueError:
            raise CliError(f"{ref!r} is neither a market address nor a market id") from None

    def chain(self) -> RpcChain:
        """The cluster's JSON-RPC, closed when the command ends."""
        url, commitment = self.settings.rpc_url, self.settings.commitment
        chain = RpcChain(url, self.program_id, commitment, SendPolicy.from_settings(self.settings))
        self._resources.push_async_callback(chain.close)
        return chain

    def oracle(self) -> OracleApi:
        """The oracle's HTTP API, every request signed by the keypair; closed when the command
        ends."""
        api = OracleApi(self.settings.oracle_url, self.signer)
        self._resources.push_async_callback(api.close)
        return api

    async def connect(self, paying: bool = False) -> NishatiClient:
        """The program on the cluster, after checking it answers and has the program; with
        ``paying``, that the signer can pay a fee there."""
        url, program_id = self.settings.rpc_url, self.program_id
        signer = self.signer if paying else None
        chain = self.chain()
        try:
            await check_program_deployed(chain, program_id)
        except RpcError as error:
            raise CliError(f"no Solana JSON-RPC answers at {url} ({error})") from None
        except ProgramNotDeployed:
            raise CliError(
                f"program {program_id} is not deployed at {url}: the wrong cluster, "
                "or the wrong NISHATI_PROGRAM_ID"
            ) from None
        if signer is not None:
            balance = await chain.balance(signer.pubkey())
            if balance < 2 * LAMPORTS_PER_SIGNATURE:
                raise CliError(_too_little_sol(signer.pubkey(), balance))
        return NishatiClient(chain, program_id)

    async def run(self, work: Awaitable[None]) -> None:
        """Awaits a command's coroutine, then closes what it connected."""
        async with self._resources:
            await work


def _too_little_sol(payer: Pubkey, balance: int) -> str:
    return f"{payer} has {balance:,} lamports: too little SOL for this transaction's fees and rent"


def in_session(
    command: Callable[Concatenate[Session, P], Coroutine[Any, Any, None] | None],
) -> Callable[..., None]:
    """``command`` as typer calls it: with the context, whose session becomes ``command``'s
    first argument; a coroutine runs to its end in an event loop of its own."""

    @functools.wraps(command)
    def run(ctx: typer.Context, *args: P.args, **options: P.kwargs) -> None:
        session = ctx.find_object(Session)
        assert session is not None, "the root callback makes the session"
        work = command(session, *args, **options)
        if work is not None:
            asyncio.run(session.run(work))

    # typer reads the options from the signature: the command's, with the context for the session.
    _, *options = inspect.signature(command, eval_str=True).parameters.values()
    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    signature = inspect.Signature([context, *options], return_annotation=None)
    run.__signature__ = signature  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return run


async def fetch(kind: str, address: Pubkey, account: Awaitable[T]) -> T:
    """An account the user named, or a clear error."""
    try:
        return await account
    except AccountNotFound:
        raise CliError(f"no {kind} at {address}") from None
    except AccountTypeMismatch:
        raise CliError(f"{address} is not a Nishati {kind}") from None
