"""The oracle's Africa's Talking client against the SMS simulator over HTTP: a message sent,
a recipient refused, a wrong key, a gateway away; which host the settings pick."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from nishati_dev.processes import SmsSimService, free_port
from nishati_dev.sms_sim import TEST_API_KEY
from nishati_oracle.accounts.sms import AfricasTalkingSms, SmsRefused, SmsUnavailable
from nishati_oracle.core.settings import Sms, SmsSettings
from tests.accounts.conftest import new_phone


def simulator(url: str, **changes: object) -> SmsSettings:
    settings = SmsSettings(provider=Sms.simulator, url=url, api_key=SecretStr(TEST_API_KEY))
    return settings.model_copy(update=changes)


async def test_a_message_is_sent_as_africas_talking_takes_it(sms_sim: SmsSimService) -> None:
    phone = new_phone()
    sender = AfricasTalkingSms(simulator(sms_sim.url, sender_id="NISHATI"))
    try:
        receipt = await sender.send("0" + phone[3:], "123456 is your code")
    finally:
        await sender.close()
    assert (receipt.status_code, receipt.status) == (101, "Success")
    assert receipt.cost == "KES 0.8000"
    (sent,) = sms_sim.messages("+" + phone)
    assert sent == {
        "id": receipt.message_id,
        "to": "+" + phone,
        "sender": "NISHATI",
        "message": "123456 is your code",
        "at": sent["at"],
    }


async def test_a_refused_recipient_is_an_error_with_its_status(sms_sim: SmsSimService) -> None:
    phone = new_phone()
    async with httpx.AsyncClient(base_url=sms_sim.url) as control:
        rule = {"number": "+" + phone, "status_code": 405, "status": "InsufficientBalance"}
        assert (await control.post("/simulator/refusals", json=rule)).status_code == 204
        sender = AfricasTalkingSms(simulator(sms_sim.url))
        try:
            with pytest.raises(SmsRefused) as refused:
                await sender.send(phone, "123456")
        finally:
            await sender.close()
            await control.delete("/simulator/refusals")
    assert (refused.value.status_code, refused.value.status) == (405, "InsufficientBalance")
    assert sms_sim.messages("+" + phone) == []


async def test_a_wrong_key_or_username_is_refused(sms_sim: SmsSimService) -> None:
    for changes in ({"api_key": SecretStr("not-the-key")}, {"username": "someone"}):
        sender = AfricasTalkingSms(simulator(sms_sim.url, **changes))
        try:
            with pytest.raises(SmsRefused) as refused:
                await sender.send(new_phone(), "123456")
        finally:
            await sender.close()
        assert refused.value.status_code == 401


async def test_a_gateway_that_does_not_answer() -> None:
    sender = AfricasTalkingSms(simulator(f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(SmsUnavailable):
            await sender.send(new_phone(), "123456")
    finally:
        await sender.close()


def test_the_host_the_settings_pick() -> None:
    live = SmsSettings(provider=Sms.africastalking, username="nishati")
    assert live.base_url == "https://api.africastalking.com"
    sandbox = SmsSettings(provider=Sms.africastalking, username="sandbox")
    assert sandbox.base_url == "https://api.sandbox.africastalking.com"
    with pytest.raises(ValueError, match="NISHATI_SMS_URL"):
        _ = SmsSettings(provider=Sms.simulator).base_url
    with pytest.raises(ValueError, match="disabled"):
        _ = SmsSettings().base_url
