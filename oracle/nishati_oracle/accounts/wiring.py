"""Builds sign-in from the settings for the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from nishati_client.phone import InvalidPhoneSalt, commitment, salt_from_settings
from nishati_oracle.accounts.api_keys import ApiKeys
from nishati_oracle.accounts.codes import SignInCodes
from nishati_oracle.accounts.limits import RateLimit
from nishati_oracle.accounts.lockouts import Lockouts
from nishati_oracle.accounts.operators import Operators
from nishati_oracle.accounts.secrets import Keyed
from nishati_oracle.accounts.sessions import Sessions
from nishati_oracle.accounts.sms import SmsSender, sms_sender
from nishati_oracle.core.metrics import Metrics
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.readings.store import Store
from nishati_oracle.trading.ledger import Ledger

log = structlog.get_logger(__name__)


@dataclass
class PhoneDirectory:
    """The households whose phones the oracle knows (the trading desk's enrolments): a phone
    signs in as the household it is enrolled for."""

    ledger: Ledger
    salt: bytes

    async def household_of(self, phone: str) -> str | None:
        return await self.ledger.household_of(commitment(self.salt, phone))


@dataclass
class Accounts:
    settings: OracleSettings
    codes: SignInCodes
    operators: Operators
    sessions: Sessions
    api_keys: ApiKeys
    # None while households cannot sign in: no SMS provider, or no phone salt.
    sms: SmsSender | None
    phones: PhoneDirectory | None
    per_address: RateLimit
    per_phone: RateLimit
    metrics: Metrics

    async def close(self) -> None:
        if self.sms is not None:
            await self.sms.close()


def build_accounts(settings: OracleSettings, store: Store, metrics: Metrics) -> Accounts:
    auth = settings.auth
    if auth.secret is None:
        log.warning(
            "auth secret unset",
            setting="NISHATI_AUTH_SECRET",
            effect="sign-in codes sent before a restart will be refused",
        )
    keyed = Keyed.from_settings(auth)
    lockouts = Lockouts(store.engine, auth.code_attempts, auth.lockout_secs)
    try:
        phones: PhoneDirectory | None = PhoneDirectory(
            Ledger(store.engine), salt_from_settings(settings.chain)
        )
    except InvalidPhoneSalt:
        phones = None
    sms = sms_sender(settings.sms) if phones is not None else None
    return Accounts(
        settings=settings,
        codes=SignInCodes(store.engine, keyed, lockouts, auth.code_secs),
        operators=Operators(store.engine, keyed, lockouts),
        sessions=Sessions(store.engine, auth),
        api_keys=ApiKeys(store.engine),
        sms=sms,
        phones=phones,
        per_address=RateLimit(
            store.engine, keyed, "address", auth.requests_per_address, auth.rate_window_secs
        ),
        per_phone=RateLimit(
            store.engine, keyed, "phone", auth.code_requests_per_phone, auth.rate_window_secs
        ),
        metrics=metrics,
    )
