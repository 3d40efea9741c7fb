"""Text messages through Africa's Talking's SMS API (or the local simulator, when chosen by
name: NISHATI_SMS_PROVIDER=simulator).

One request: ``POST {base}/version1/messaging``, form-encoded ``username``, ``to`` (the number
in international form, ``+2547...``), ``message`` and, when set, ``from`` (the sender id); the
app's key in the ``apiKey`` header and ``Accept: application/json``. The answer (HTTP 201)
holds ``SMSMessageData.Recipients``, one per number, each with its ``statusCode`` (100
Processed, 101 Sent, 102 Queued; 4xx and 5xx refusals such as 403 InvalidPhoneNumber or 405
InsufficientBalance), ``status``, ``messageId`` and ``cost``. The sandbox app (username
``sandbox``) is served on its own host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nishati_client.phone import mask, normalise
from nishati_oracle.core.settings import Sms, SmsSettings

log = structlog.get_logger(__name__)

MESSAGING_PATH = "/version1/messaging"
# A recipient's statusCode when the message is on its way.
ACCEPTED_STATUS_CODES = frozenset({100, 101, 102})
# The most of a refusal's text kept in its error (it may be long HTML from a proxy).
REFUSAL_CHARS = 200


class SmsError(Exception):
    """A message that was not sent."""


class SmsRefused(SmsError):
    """Africa's Talking refused the message: ``status_code`` its recipient's statusCode (or
    the HTTP status when the request itself was refused) and ``status`` its name."""

    def __init__(self, status_code: int, status: str) -> None:
        super().__init__(f"{status_code} {status}")
        self.status_code = status_code
        self.status = status


class SmsUnavailable(SmsError):
    """The SMS API did not answer, or answered in a shape it never does."""


class _Recipient(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    status_code: int = Field(alias="statusCode")
    number: str
    status: str
    cost: str
    message_id: str = Field(alias="messageId")


class _MessageData(BaseModel):
    message: str = Field(alias="Message")
    recipients: list[_Recipient] = Field(alias="Recipients")


class _SendReply(BaseModel):
    data: _MessageData = Field(alias="SMSMessageData")


@dataclass(frozen=True)
class SmsReceipt:
    message_id: str
    status_code: int
    status: str
    cost: str


class SmsSender(Protocol):
    async def send(self, phone: str, message: str) -> SmsReceipt: ...

    async def close(self) -> None: ...


def international(phone: str) -> str:
    """``+2547XXXXXXXX``, the form Africa's Talking takes."""
    return "+" + normalise(phone)


class AfricasTalkingSms:
    def __init__(self, settings: SmsSettings, transport: httpx.AsyncBaseTransport | None = None):
        if settings.api_key is None:
            raise ValueError("NISHATI_SMS_API_KEY is not set")
        self.settings = settings
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers={"apiKey": settings.api_key.get_secret_value(), "Accept": "application/json"},
            timeout=settings.timeout_secs,
            transport=transport,
        )

    async def send(self, phone: str, message: str) -> SmsReceipt:
        """Sends ``message`` to ``phone``; SmsRefused or SmsUnavailable if it is not sent."""
        form = {"username": self.settings.username, "to": international(phone), "message": message}
        if self.settings.sender_id is not None:
            form["from"] = self.settings.sender_id
        try:
            answer = await self._http.post(MESSAGING_PATH, data=form)
        except httpx.HTTPError as error:
            raise SmsUnavailable(f"the SMS API did not answer: {type(error).__name__}") from None
        if answer.status_code >= 500:
            raise SmsUnavailable(f"the SMS API answered {answer.status_code}")
        if answer.status_code >= 400:
            raise SmsRefused(answer.status_code, answer.text[:REFUSAL_CHARS])
        try:
            reply = _SendReply.model_validate_json(answer.content)
        except ValidationError:
            raise SmsUnavailable("the SMS API's answer is not SMSMessageData") from None
        if len(reply.data.recipients) != 1:
            raise SmsUnavailable(f"the SMS API's answer names {len(reply.data.recipients)} numbers")
        recipient = reply.data.recipients[0]
        if recipient.status_code not in ACCEPTED_STATUS_CODES:
            raise SmsRefused(recipient.status_code, recipient.status)
        receipt = SmsReceipt(
            recipient.message_id, recipient.status_code, recipient.status, recipient.cost
        )
        log.info(
            "sms sent",
            phone=mask(phone),
            message_id=receipt.message_id,
            status=receipt.status,
            cost=receipt.cost,
        )
        return receipt

    async def close(self) -> None:
        await self._http.aclose()


def sms_sender(settings: SmsSettings) -> SmsSender | None:
    """The sender the settings select (the simulator speaks Africa's Talking's API), or
    ``None`` while SMS is disabled."""
    if settings.provider is Sms.disabled:
        return None
    return AfricasTalkingSms(settings)
