"""Builds trading from the settings for the app's lifespan: nothing here runs unless
``NISHATI_PAYMENTS`` names a Daraja (the simulator only when asked for by name)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import structlog
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.phone import salt_from_settings
from nishati_client.program import NishatiClient
from nishati_oracle.core.group_commit import GroupCommit
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.daraja import callback_token
from nishati_oracle.readings.store import Store
from nishati_oracle.trading.desk import TradeDesk
from nishati_oracle.trading.gateway import DarajaGateway, Gateway, daraja_config
from nishati_oracle.trading.idempotency import Idempotency
from nishati_oracle.trading.ledger import Ledger, NewCallback, Stored
from nishati_oracle.trading.token_store import DatabaseTokenStore
from nishati_oracle.trading.vault import PhoneVault
from nishati_oracle.trading.worker import CallbackUrls, PaymentWorker

log = structlog.get_logger(__name__)

# Callbacks stored in one transaction at most.
CALLBACK_GROUP = 512


@dataclass
class Trading:
    """What the lifespan builds for trading and the routes use."""

    settings: OracleSettings
    ledger: Ledger
    desk: TradeDesk
    worker: PaymentWorker
    gateway: Gateway
    vault: PhoneVault
    inbox: GroupCommit[NewCallback, Stored]
    token: str
    metrics: Metrics
    orders: Idempotency

    async def close(self) -> None:
        await self.gateway.close()


def callback_urls(settings: OracleSettings, token: str) -> CallbackUrls:
    base = settings.payments.public_url.rstrip("/")
    return CallbackUrls(
        payment=f"{base}/api/v1/payments/callback/{token}",
        payout_result=f"{base}/api/v1/payouts/result/{token}",
        payout_timeout=f"{base}/api/v1/payouts/timeout/{token}",
        refund_result=f"{base}/api/v1/refunds/result/{token}",
        refund_timeout=f"{base}/api/v1/refunds/timeout/{token}",
    )


def replica_id(settings: OracleSettings) -> str | None:
    """Who this oracle is in its claims on trades: its host and HTTP port, so that a replica
    restarted in its place takes its claims back at once rather than waiting for them to run
    out, and two on one host differ. On any free port (0), one drawn for this process."""
    if settings.http.port == 0:
        return None
    return f"{socket.gethostname()[:25]}:{settings.http.port}"


def build_trading(
    settings: OracleSettings,
    store: Store,
    client: NishatiClient,
    oracle: Keypair,
    market: Pubkey,
    metrics: Metrics,
) -> Trading:
    if settings.payments.callback_token is None:
        token = callback_token()
        log.warning(
            "callback token unset",
            setting="NISHATI_CALLBACK_TOKEN",
            effect="callbacks to an earlier run will be refused",
        )
    else:
        token = settings.payments.callback_token.get_secret_value()
    urls = callback_urls(settings, token)
    vault = PhoneVault.from_settings(settings, salt_from_settings(settings.chain))
    ledger = Ledger(
        store.engine,
        store.writer,
        observe=lambda state: metrics.trades.labels(state).inc(),
        replica=replica_id(settings),
    )
    config = daraja_config(settings)
    # Every replica shares the app's one token: each new one invalidates the last.
    tokens = DatabaseTokenStore(store.engine, vault, config.consumer_key.get_secret_value())
    gateway = DarajaGateway(config, token_store=tokens)
    worker = PaymentWorker(settings, ledger, client, oracle, vault, gateway, urls, metrics)
    desk = TradeDesk(
        settings, ledger, client, oracle, market, vault, gateway, urls.payment, worker.wake
    )
    orders = Idempotency(ledger, settings.payments.idempotency_key_secs)
    inbox = callback_inbox(ledger)
    return Trading(settings, ledger, desk, worker, gateway, vault, inbox, token, metrics, orders)


def callback_inbox(ledger: Ledger) -> GroupCommit[NewCallback, Stored]:
    """Daraja's callbacks into the ledger, group-committed: for each, what became of it."""
    return GroupCommit(ledger.store_callbacks, CALLBACK_GROUP, "callback-writer")
