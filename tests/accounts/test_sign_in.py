"""Households sign in with a code the SMS simulator received, operators with a password: the
codes' life, lockouts, rate limits, what the database keeps, the cookies, sign-out."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from nishati_client.phone import mask
from nishati_oracle.accounts.secrets import digest
from tests.accounts.conftest import (
    OPERATOR,
    OPERATOR_PASSWORD,
    SignInWorld,
    new_phone,
)


def rows(world: SignInWorld, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(world.database) as db:
        return db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 (a test's table)


async def test_a_household_signs_in_with_the_code_sent_to_its_phone(signin: SignInWorld) -> None:
    member, phone = await signin.household()
    browser = signin.browser()
    asked = await browser.post("/api/v1/auth/code", json={"phone": "0" + phone[3:]})
    assert asked.status_code == 202, asked.text
    sent = await signin.messages(phone)
    assert len(sent) == 1
    assert sent[0]["to"] == "+" + phone
    code = await signin.last_code(phone)
    answer = await browser.post("/api/v1/auth/session", json={"phone": phone, "code": code})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"role": "household", "household": str(member.address)}
    me = await browser.get("/api/v1/auth/me")
    assert me.json() == {"role": "household", "household": str(member.address)}
    # Used once: the same code again is refused.
    other = signin.browser()
    again = await other.post("/api/v1/auth/session", json={"phone": phone, "code": code})
    assert (again.status_code, again.json()["reason"]) == (401, "CodeRejected")
    metrics = (await browser.get("/metrics")).text
    assert 'nishati_sign_in_codes_total{outcome="sent"} 1.0' in metrics
    assert 'nishati_sign_ins_total{holder="household",outcome="signed_in"} 1.0' in metrics
    assert 'nishati_sign_ins_total{holder="household",outcome="CodeRejected"} 1.0' in metrics


async def test_an_unknown_phone_is_answered_the_same_and_sent_nothing(
    signin: SignInWorld,
) -> None:
    _, known = await signin.household()
    unknown = new_phone()
    answers = [
        await signin.browser().post("/api/v1/auth/code", json={"phone": phone})
        for phone in (known, unknown)
    ]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].content == answers[1].content
    assert await signin.messages(unknown) == []
    assert len(await signin.messages(known)) == 1
    metrics = (await signin.browser().get("/metrics")).text
    assert 'nishati_sign_in_codes_total{outcome="no_household"} 1.0' in metrics
    # No code works for it: none was made.
    tried = await signin.browser().post(
        "/api/v1/auth/session", json={"phone": unknown, "code": "000000"}
    )
    assert (tried.status_code, tried.json()["reason"]) == (401, "CodeRejected")


async def test_one_code_at_a_time_and_none_after_it_expires(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, phone = await signin.household()
    browser = signin.browser()
    await browser.post("/api/v1/auth/code", json={"phone": phone})
    first = await signin.last_code(phone)
    await browser.post("/api/v1/auth/code", json={"phone": phone})
    second = await signin.last_code(phone)
    if first != second:
        stale = await browser.post("/api/v1/auth/session", json={"phone": phone, "code": first})
        assert (stale.status_code, stale.json()["reason"]) == (401, "CodeRejected")
    codes = signin.oracle.services.accounts.codes
    later = time.time() + signin.oracle.settings.auth.code_secs + 1
    monkeypatch.setattr(codes, "clock", lambda: later)
    expired = await browser.post("/api/v1/auth/session", json={"phone": phone, "code": second})
    assert (expired.status_code, expired.json()["reason"]) == (401, "CodeRejected")


@pytest.mark.parametrize("auth_changes", [{"code_attempts": 3, "lockout_secs": 600}])
async def test_wrong_codes_lock_the_phone_out(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, phone = await signin.household()
    browser = signin.browser()
    await browser.post("/api/v1/auth/code", json={"phone": phone})
    code = await signin.last_code(phone)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    answers = [
        await browser.post("/api/v1/auth/session", json={"phone": phone, "code": wrong})
        for _ in range(3)
    ]
    reasons = [(a.status_code, a.json()["reason"]) for a in answers]
    assert reasons == [(401, "CodeRejected"), (401, "CodeRejected"), (429, "SignInLocked")]
    assert 0 < int(answers[-1].headers["Retry-After"]) <= 600
    # The right code does not work while locked, nor does a new one, nor asking for one.
    locked = await browser.post("/api/v1/auth/session", json={"phone": phone, "code": code})
    assert (locked.status_code, locked.json()["reason"]) == (429, "SignInLocked")
    asked = await browser.post("/api/v1/auth/code", json={"phone": phone})
    assert (asked.status_code, asked.json()["reason"]) == (429, "SignInLocked")
    # Once the lockout is over, a new code signs in.
    lockouts = signin.oracle.services.accounts.codes.lockouts
    later = time.time() + 601
    monkeypatch.setattr(lockouts, "clock", lambda: later)
    await signin.sign_in(browser, phone)


@pytest.mark.parametrize(
    "auth_changes", [{"code_requests_per_phone": 2, "requests_per_address": 5}]
)
async def test_code_requests_are_limited_per_phone_and_per_address(
    signin: SignInWorld,
) -> None:
    _, phone = await signin.household()
    browser = signin.browser()
    answers = [await browser.post("/api/v1/auth/code", json={"phone": phone}) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[-1].json()["reason"] == "TooManySignInRequests"
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert len(await signin.messages(phone)) == 2
    # Other phones from the same address: two more requests, then the address's limit.
    others = [
        await browser.post("/api/v1/auth/code", json={"phone": new_phone()}) for _ in range(3)
    ]
    assert [a.status_code for a in others] == [202, 202, 429]
    tried = await browser.post("/api/v1/auth/session", json={"phone": phone, "code": "123456"})
    assert (tried.status_code, tried.json()["reason"]) == (429, "TooManySignInRequests")


async def test_the_database_holds_no_code_phone_session_id_or_csrf_token_in_clear(
    signin: SignInWorld,
) -> None:
    _, phone = await signin.household()
    browser = signin.browser()
    await browser.post("/api/v1/auth/code", json={"phone": phone})
    code = await signin.last_code(phone)
    with sqlite3.connect(signin.database) as db:
        dump = "\n".join(db.iterdump())
    assert code not in dump
    assert phone not in dump
    assert phone[3:] not in dump
    (stored,) = rows(signin, "sign_in_codes")
    assert code not in "".join(str(v) for v in stored)
    await browser.post("/api/v1/auth/session", json={"phone": phone, "code": code})
    session_id = browser.cookies["nishati_session"]
    csrf = browser.cookies["nishati_csrf"]
    with sqlite3.connect(signin.database) as db:
        dump = "\n".join(db.iterdump())
    assert session_id not in dump
    assert csrf not in dump
    assert digest(session_id) in dump
    # The code was used up.
    assert rows(signin, "sign_in_codes") == []


async def test_the_cookies_flags(signin: SignInWorld) -> None:
    _, phone = await signin.household()
    answer = await signin.sign_in(signin.browser(), phone)
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    session, csrf = cookies["nishati_session"], cookies["nishati_csrf"]
    for flags in (session, csrf):
        assert "; secure" in flags
        assert "samesite=lax" in flags
        assert "path=/" in flags
        assert f"max-age={signin.oracle.settings.auth.session_secs}" in flags
    assert "httponly" in session
    # The page's script reads the CSRF token.
    assert "httponly" not in csrf


@pytest.mark.parametrize("auth_changes", [{"insecure_cookies": True}])
async def test_secure_is_dropped_only_when_asked(signin: SignInWorld) -> None:
    _, phone = await signin.household()
    answer = await signin.sign_in(signin.browser(), phone)
    for cookie in answer.headers.get_list("set-cookie"):
        assert "secure" not in cookie.lower()
        assert "samesite=lax" in cookie.lower()


async def test_a_change_with_a_session_needs_its_csrf_token(signin: SignInWorld) -> None:
    _, phone = await signin.household()
    browser = signin.browser()
    await signin.sign_in(browser, phone)
    csrf = browser.cookies["nishati_csrf"]
    missing = await browser.delete("/api/v1/auth/session")
    assert (missing.status_code, missing.json()["reason"]) == (403, "CsrfTokenMissing")
    wrong = await browser.delete("/api/v1/auth/session", headers={"X-CSRF-Token": csrf + "x"})
    assert (wrong.status_code, wrong.json()["reason"]) == (403, "CsrfTokenMismatch")
    # Header and cookie agree, but are not this session's (another site's cookie injection).
    session_id = browser.cookies["nishati_session"]
    injected = signin.replaying(nishati_session=session_id, nishati_csrf="forged")
    forged = await injected.delete("/api/v1/auth/session", headers={"X-CSRF-Token": "forged"})
    assert (forged.status_code, forged.json()["reason"]) == (403, "CsrfTokenMismatch")
    assert (await browser.get("/api/v1/auth/me")).status_code == 200
    out = await browser.delete("/api/v1/auth/session", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    assert rows(signin, "sessions") == []
    gone = await browser.get("/api/v1/auth/me")
    assert (gone.status_code, gone.json()["reason"]) == (401, "NotSignedIn")


async def test_a_signed_out_session_id_is_refused_when_sent_again(signin: SignInWorld) -> None:
    _, phone = await signin.household()
    browser = signin.browser()
    await signin.sign_in(browser, phone)
    session_id, csrf = browser.cookies["nishati_session"], browser.cookies["nishati_csrf"]
    live = await signin.replaying(nishati_session=session_id).get("/api/v1/auth/me")
    assert live.status_code == 200
    await browser.delete("/api/v1/auth/session", headers={"X-CSRF-Token": csrf})
    replayed = signin.replaying(nishati_session=session_id)
    answer = await replayed.get("/api/v1/auth/me")
    assert (answer.status_code, answer.json()["reason"]) == (401, "NotSignedIn")


async def test_sessions_end_at_their_expiry_and_when_idle(
    signin: SignInWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, phone = await signin.household()
    sessions = signin.oracle.services.accounts.sessions
    auth = signin.oracle.settings.auth
    idle, fresh = signin.browser(), signin.browser()
    await signin.sign_in(idle, phone)
    await signin.sign_in(fresh, phone)
    start = time.time()
    # One keeps being used, the other not, until past the idle timeout.
    step = auth.session_idle_secs * 0.6
    monkeypatch.setattr(sessions, "clock", lambda: start + step)
    assert (await fresh.get("/api/v1/auth/me")).status_code == 200
    monkeypatch.setattr(sessions, "clock", lambda: start + 2 * step)
    assert (await fresh.get("/api/v1/auth/me")).status_code == 200
    assert (await idle.get("/api/v1/auth/me")).status_code == 401
    # Used all along, a session still ends at its expiry.
    at = start
    while at < start + auth.session_secs:
        at += step
        monkeypatch.setattr(sessions, "clock", lambda at=at: at)
        answer = await fresh.get("/api/v1/auth/me")
    assert (answer.status_code, answer.json()["reason"]) == (401, "NotSignedIn")


async def test_an_operator_signs_in_with_a_password(signin: SignInWorld) -> None:
    browser = signin.browser()
    await signin.operator_session(browser)
    me = await browser.get("/api/v1/auth/me")
    assert me.json() == {"role": "operator", "username": OPERATOR}
    (row,) = rows(signin, "operators")
    assert OPERATOR_PASSWORD not in str(row)
    assert row[1].startswith("$argon2id$")
    # An operator's session works the operator routes.
    assert (await browser.get("/api/v1/operator/attention")).status_code == 200
    wrong = await signin.browser().post(
        "/api/v1/auth/operator", json={"username": OPERATOR, "password": "not the password"}
    )
    assert (wrong.status_code, wrong.json()["reason"]) == (401, "PasswordRejected")
    nobody = await signin.browser().post(
        "/api/v1/auth/operator", json={"username": "nobody", "password": OPERATOR_PASSWORD}
    )
    assert (nobody.status_code, nobody.json()["reason"]) == (401, "PasswordRejected")
    assert nobody.json()["detail"] == wrong.json()["detail"]


@pytest.mark.parametrize("auth_changes", [{"code_attempts": 2, "requests_per_address": 100}])
async def test_wrong_passwords_lock_the_operator_out(signin: SignInWorld) -> None:
    await signin.operator_session(signin.browser())
    wrong = {"username": OPERATOR, "password": "not the password"}
    answers = [await signin.browser().post("/api/v1/auth/operator", json=wrong) for _ in range(2)]
    assert [a.json()["reason"] for a in answers] == ["PasswordRejected", "SignInLocked"]
    right = {"username": OPERATOR, "password": OPERATOR_PASSWORD}
    locked = await signin.browser().post("/api/v1/auth/operator", json=right)
    assert (locked.status_code, locked.json()["reason"]) == (429, "SignInLocked")


async def test_households_cannot_sign_in_without_sms(signin: SignInWorld) -> None:
    signin.oracle.services.accounts.sms = None
    answer = await signin.browser().post("/api/v1/auth/code", json={"phone": new_phone()})
    assert (answer.status_code, answer.json()["reason"]) == (503, "SignInUnavailable")


@pytest.fixture
def captured() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log event while the test runs; structlog left unconfigured after it, as found
    (the commands configure it only when nothing has)."""
    try:
        with capture_logs() as logged:
            yield logged
    finally:
        structlog.reset_defaults()


async def test_logs_show_phones_only_masked_and_never_a_code(
    signin: SignInWorld, captured: list[MutableMapping[str, Any]]
) -> None:
    _, phone = await signin.household()
    browser = signin.browser()
    await browser.post("/api/v1/auth/code", json={"phone": phone})
    code = await signin.last_code(phone)
    await browser.post("/api/v1/auth/session", json={"phone": phone, "code": "000000"})
    await browser.post("/api/v1/auth/session", json={"phone": phone, "code": code})
    await browser.post("/api/v1/auth/code", json={"phone": new_phone()})
    logged = list(captured)
    events = {e["event"] for e in logged}
    assert {"sms sent", "household sign-in refused", "household signed in"} <= events
    text = json.dumps(logged, default=str)
    assert mask(phone) in text
    assert phone[3:] not in text
    assert code not in text
    assert browser.cookies["nishati_session"] not in text


async def test_a_code_the_gateway_refuses_is_counted_and_the_answer_is_the_same(
    signin: SignInWorld,
) -> None:
    _, phone = await signin.household()
    rule = {"number": "+" + phone, "status_code": 406, "status": "UserInBlacklist"}
    async with httpx.AsyncClient(base_url=signin.sms.url) as control:
        assert (await control.post("/simulator/refusals", json=rule)).status_code == 204
        try:
            asked = await signin.browser().post("/api/v1/auth/code", json={"phone": phone})
        finally:
            await control.delete("/simulator/refusals")
    assert asked.status_code == 202
    assert await signin.messages(phone) == []
    metrics = (await signin.browser().get("/metrics")).text
    assert 'nishati_sign_in_codes_total{outcome="refused"} 1.0' in metrics
