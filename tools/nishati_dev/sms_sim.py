"""An SMS gateway simulator speaking Africa's Talking's SMS API, for the oracle's sign-in codes
(NISHATI_SMS_PROVIDER=simulator, NISHATI_SMS_URL=<its URL>): written from Africa's Talking's
documentation, independent of the oracle's client.

- ``POST /version1/messaging``: form-encoded ``username``, ``to`` (comma-separated numbers in
  international form), ``message``, optional ``from``; the ``apiKey`` header. A wrong key or
  username is a 401 in plain text, as Africa's Talking answers; otherwise 201 with
  ``SMSMessageData`` (``Message`` and one ``Recipients`` entry per number: ``statusCode``,
  ``number``, ``status``, ``cost``, ``messageId``). A number not of the form ``+<digits>`` is
  refused (403 InvalidPhoneNumber), as is one ``POST /simulator/refusals`` names.
- ``GET /messages?to=+2547...``: every message sent to that number, oldest first (the tests
  read sign-in codes here); without ``to``, every message.
- ``POST /simulator/refusals {number, status_code, status}``: sends to ``number`` are refused
  so from now on; ``DELETE /simulator/refusals`` forgets them.
- ``GET /simulator/health``.

``python -m nishati_dev.sms_sim`` serves it (settings ``SMS_SIM_*``); every default is a test
value. Messages are kept in memory only.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nishati_dev.serving import serve_simulator

TEST_USERNAME = "sandbox"
TEST_API_KEY = "nishati-sim-sms-api-key"
COST = "KES 0.8000"
# A number Africa's Talking takes: "+", a country code and the subscriber's digits.
INTERNATIONAL = re.compile(r"\+[0-9]{4,15}")
# The recipient statusCode and status of a message on its way.
SENT = (101, "Success")


class SmsSimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMS_SIM_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Loopback only: this is a test service")
    port: int = Field(default=8090, ge=0, le=65_535, description="Port; 0 for any free one")
    username: str = Field(default=TEST_USERNAME, description="The app username it accepts")
    api_key: SecretStr = Field(
        default=SecretStr(TEST_API_KEY), description="The apiKey header it accepts"
    )

    @field_validator("host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the SMS simulator binds to loopback only")
        return host


@dataclass(frozen=True)
class SentMessage:
    id: str
    to: str
    sender: str | None
    message: str
    at: float


class Refusal(BaseModel):
    number: str = Field(pattern=INTERNATIONAL.pattern)
    status_code: int = Field(ge=400, le=599, description="e.g. 405")
    status: str = Field(min_length=1, max_length=40, description="e.g. InsufficientBalance")


def create_app(settings: SmsSimSettings) -> FastAPI:
    app = FastAPI(title="SMS simulator (Africa's Talking)", docs_url=None, redoc_url=None)
    sent: list[SentMessage] = []
    refusals: dict[str, Refusal] = {}
    key = settings.api_key.get_secret_value().encode()

    @app.post("/version1/messaging")
    async def messaging(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        given = request.headers.get("apiKey", "").encode()
        if not secrets.compare_digest(given, key) or form.get("username") != settings.username:
            return PlainTextResponse("The supplied authentication is invalid", status_code=401)
        numbers = [n.strip() for n in form.get("to", "").split(",") if n.strip()]
        message = form.get("message", "")
        if not numbers or not message:
            return PlainTextResponse("Must have to and message", status_code=400)
        recipients = []
        for number in numbers:
            refused = refusals.get(number)
            if refused is None and INTERNATIONAL.fullmatch(number) is None:
                refused = Refusal(number="+0000", status_code=403, status="InvalidPhoneNumber")
            if refused is not None:
                recipients.append(
                    {
                        "statusCode": refused.status_code,
                        "number": number,
                        "status": refused.status,
                        "cost": "0",
                        "messageId": "None",
                    }
                )
                continue
            entry = SentMessage(
                f"ATXid_{secrets.token_hex(16)}", number, form.get("from"), message, time.time()
            )
            sent.append(entry)
            recipients.append(
                {
                    "statusCode": SENT[0],
                    "number": number,
                    "status": SENT[1],
                    "cost": COST,
                    "messageId": entry.id,
                }
            )
        delivered = sum(1 for r in recipients if r["statusCode"] == SENT[0])
        total = f"KES {0.8 * delivered:.4f}" if delivered else "0"
        body = {
            "SMSMessageData": {
                "Message": f"Sent to {delivered}/{len(recipients)} Total Cost: {total}",
                "Recipients": recipients,
            }
        }
        return JSONResponse(body, status_code=201)

    @app.get("/messages")
    async def messages(to: str | None = None) -> list[dict[str, object]]:
        wanted = None if to is None else "+" + to.strip().lstrip("+")
        return [asdict(m) for m in sent if wanted is None or m.to == wanted]

    @app.post("/simulator/refusals", status_code=204)
    async def refuse(rule: Refusal) -> Response:
        refusals[rule.number] = rule
        return Response(status_code=204)

    @app.delete("/simulator/refusals", status_code=204)
    async def forget_refusals() -> Response:
        refusals.clear()
        return Response(status_code=204)

    @app.get("/simulator/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: Sequence[str] | None = None) -> None:
    serve_simulator(
        module="sms_sim",
        description=__doc__ or "",
        name="SMS simulator",
        env_prefix="SMS_SIM_",
        default_port=8090,
        settings=SmsSimSettings,
        create_app=create_app,
        argv=argv,
    )


if __name__ == "__main__":
    main()
