"""Meter readings over MQTT: one topic per meter, into the same pipeline as HTTP.

Topics, under ``NISHATI_MQTT_TOPIC_ROOT`` and the market's address::

    <root>/<market>/meters/<meter base58>/readings   signature (64 bytes) ‖ reading (37 bytes)
    <root>/<market>/meters/<meter base58>/rejected   {"reason": ..., "counter": ..., "detail": ...}

Why it is built the way it is:

- **Acknowledged once stored.** Readings arrive at QoS 1 and paho runs with ``manual_ack``: the
  PUBACK leaves only after :meth:`Pipeline.submit` returned, so the reading is stored durably. If
  the oracle dies first, the broker sends the message again and the pipeline answers
  ``duplicate``.
- **A session that outlives the oracle.** MQTT 5 with ``clean_start=False``, a session expiry and
  a fixed client id: the broker keeps the subscription and queues readings while the oracle
  restarts. Two oracles must not share a client id (the broker would drop one for the other).
- **Replicas share the readings.** Every replica subscribes through one shared subscription
  (``$share/<NISHATI_MQTT_SHARE_GROUP>/...``), so the broker hands each message to one of them
  and waits for that one's PUBACK. Mosquitto 2.0 deals a group's messages round-robin over
  every session in it, connected or not: a replica that is down keeps its turns, and what is
  queued for it (and what it held unacknowledged) waits until a process with its client id
  connects again. So each replica has a client id of its own that stays the same across its
  restarts (``NISHATI_MQTT_CLIENT_ID``), and a replica that dies is restarted, or replaced under
  its id, well within the session expiry.
- **Backpressure from the broker.** Receive Maximum caps the unacknowledged messages the broker
  sends, and so the asyncio queue, which holds nothing but unacknowledged messages.
- **paho's thread never waits.** ``on_message`` only appends the message to an inbox and, unless
  a wake-up is already on its way, wakes the event loop (``call_soon_threadsafe``), which moves
  everything in the inbox to its queue at once: a burst costs one wake-up, not one a message.
  One task drains the queue in batches, in arrival order, so a meter's readings reach the
  pipeline in the order it sent them.
- **Reconnects by itself.** paho's loop reconnects with exponential backoff, and ``on_connect``
  subscribes every time: a broker restarted without its sessions gets the subscription back.
- **Rejects are published, not dropped.** A reading the pipeline refuses, or one whose topic or
  payload does not parse (``MalformedSubmission``), is acknowledged (sending it again would not
  change the answer) and its reason goes to the meter's ``rejected`` topic. A transient refusal
  (``ChainUnavailable``) is neither: the reading stays unacknowledged and is submitted again a
  little later, behind what arrived meanwhile (readings are cumulative, so if a newer one of
  the same meter got in first, nothing is lost when this one is then refused as a replay).

Each meter logs in to the broker as its own key and the broker's ACL keeps it to its own topics
(``nishati_oracle.readings.broker_logins``). The oracle does not rely on it: a reading counts
only if it verifies under the key its topic names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
import structlog
from paho.mqtt.enums import CallbackAPIVersion, LogLevel, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from solders.pubkey import Pubkey

from nishati_client.readings import READING_LEN, SIGNATURE_LEN, SignedReading
from nishati_oracle.core.settings import OracleSettings
from nishati_oracle.readings.ingest import Outcome, Pipeline, Reason, Status, Submission

log = structlog.get_logger(__name__)
# paho's own messages, forwarded by ``_on_log`` to a standard logger: paho logs a line or two for
# every message, on its thread, and a standard logger drops those below its level at no cost.
paho_logger = logging.getLogger(f"{__name__}.paho")

PAYLOAD_LEN = SIGNATURE_LEN + READING_LEN
QOS = 1
# MQTT 5 caps Receive Maximum at 65,535.
MAX_RECEIVE_MAXIMUM = 65_535
KEEPALIVE_SECS = 30
SUBMIT_RETRY_FIRST_SECS = 0.5
SUBMIT_RETRY_MAX_SECS = 30.0
# Refusals that say "not now" rather than "no": such a reading is submitted again later.
TRANSIENT_REASONS = frozenset({Reason.ChainUnavailable})
TRANSIENT_RETRY_SECS = 2.0


# Topics and payloads


def meters_topic(root: str, market: Pubkey | str) -> str:
    """The prefix every meter's topics share."""
    return f"{root}/{market}/meters"


def readings_topic(root: str, market: Pubkey | str, meter: Pubkey | str) -> str:
    """Where a meter publishes its signed readings."""
    return f"{meters_topic(root, market)}/{meter}/readings"


def rejected_topic(root: str, market: Pubkey | str, meter: Pubkey | str) -> str:
    """Where the oracle tells a meter (and its operators) why a reading was refused."""
    return f"{meters_topic(root, market)}/{meter}/rejected"


def subscription(topic: str, share_group: str) -> str:
    """The filter the oracle subscribes with: ``topic`` shared by ``share_group``'s members,
    or ``topic`` itself when there is no group."""
    return f"$share/{share_group}/{topic}" if share_group else topic


def encode_payload(signed: SignedReading) -> bytes:
    """The 101 bytes a meter publishes: signature, then the exact signed message."""
    return signed.signature + signed.message


class MalformedMessage(ValueError):
    """A message whose topic or payload does not parse; ``meter`` is the topic's meter segment
    (``None`` if the topic is not a meter's readings topic at all)."""

    def __init__(self, detail: str, meter: str | None) -> None:
        super().__init__(detail)
        self.meter = meter


def meter_segment(prefix: str, topic: str, kind: str = "readings") -> str | None:
    """The meter part of ``<prefix>/<meter>/<kind>``, or ``None`` for any other topic."""
    head, suffix = f"{prefix}/", f"/{kind}"
    if not topic.startswith(head) or not topic.endswith(suffix):
        return None
    segment = topic[len(head) : len(topic) - len(suffix)]
    return None if "/" in segment else segment


def decode_message(prefix: str, topic: str, payload: bytes) -> Submission:
    """The submission a message carries; raises :class:`MalformedMessage` if it carries none."""
    segment = meter_segment(prefix, topic)
    if segment is None:
        raise MalformedMessage(f"topic {topic!r} is not {prefix}/<meter>/readings", None)
    try:
        meter = Pubkey.from_string(segment)
    except ValueError:
        raise MalformedMessage(f"topic's meter {segment!r} is not a base58 key", segment) from None
    if len(payload) != PAYLOAD_LEN:
        raise MalformedMessage(
            f"payload is {len(payload)} bytes, not {PAYLOAD_LEN} (signature ‖ reading)", segment
        )
    return Submission(payload[SIGNATURE_LEN:], payload[:SIGNATURE_LEN], meter)


def dead_letter(outcome: Outcome) -> bytes:
    """The JSON published to a meter's ``rejected`` topic."""
    body = {
        "reason": None if outcome.reason is None else outcome.reason.value,
        "counter": outcome.counter,
        "detail": outcome.detail,
    }
    return json.dumps(body, separators=(",", ":")).encode()


# What the ingest reports


@dataclass
class MqttStats:
    """Running totals since start; ``connects``/``disconnects`` are written by paho's thread,
    everything else by the event loop."""

    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[Reason] = field(default_factory=Counter)
    retried: int = 0
    batches: int = 0
    submit_failures: int = 0
    dead_letters: int = 0
    connects: int = 0
    disconnects: int = 0


@dataclass(frozen=True)
class BatchReport:
    """One batch as it was acknowledged, for metrics: one outcome and one latency (arrival in
    paho to acknowledgement, in seconds) per message, malformed ones included. A transient
    refusal comes again in a later batch; ``received`` counts only first arrivals."""

    outcomes: Sequence[Outcome]
    latencies_secs: Sequence[float]
    submit_secs: float
    received: int


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    # Which connection delivered it: a packet id means nothing on another connection.
    epoch: int
    arrived: float
    # Queued again after a transient refusal.
    retry: bool = False


class MqttIngest:
    """Subscribes to every meter's readings topic of one market and feeds the pipeline.

    ``start()`` returns at once (the broker may be down; paho keeps trying); ``connected`` says
    whether readings are flowing (connected, subscribed, consumer alive): what ``/readyz`` needs.
    ``stop()`` lets the batch in hand finish for up to ``stop_timeout_secs``; messages not yet
    acknowledged then stay with the broker for the next session.
    """

    def __init__(
        self,
        settings: OracleSettings,
        pipeline: Pipeline,
        *,
        client_id: str | None = None,
        max_batch: int | None = None,
        receive_maximum: int | None = None,
        session_expiry_secs: int = 7 * 24 * 3_600,
        reconnect_delay_secs: tuple[int, int] = (1, 30),
        stop_timeout_secs: float = 10.0,
        observe: Callable[[BatchReport], None] | None = None,
    ) -> None:
        if settings.market is None:
            raise ValueError("MQTT ingestion needs NISHATI_MARKET")
        self.market = Pubkey.from_string(settings.market)
        self.prefix = meters_topic(settings.mqtt.topic_root, self.market)
        self.subscription = subscription(
            readings_topic(settings.mqtt.topic_root, self.market, "+"), settings.mqtt.share_group
        )
        self.client_id = (
            client_id
            or settings.mqtt.client_id
            or f"nishati-oracle-{self.market}-{socket.gethostname()}"
        )
        self.max_batch = max_batch or settings.readings.max_batch_readings
        # Twice a batch: the next batch gathers while the last one is being stored.
        self.receive_maximum = min(receive_maximum or 2 * self.max_batch, MAX_RECEIVE_MAXIMUM)
        self.stats = MqttStats()
        self._settings = settings
        self._pipeline = pipeline
        self._session_expiry_secs = session_expiry_secs
        self._reconnect_delay_secs = reconnect_delay_secs
        self._stop_timeout_secs = stop_timeout_secs
        self._observe = observe
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Inbound] = asyncio.Queue()
        # Filled by paho's thread, emptied into _queue on the loop (deque: thread-safe ends).
        self._inbox: deque[_Inbound] = deque()
        self._wakeup_pending = False
        self._consumer: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._epoch = 0
        self._subscribe_mid: int | None = None
        self._subscribed = False
        self._busy = False
        self._stopping = False

    # Lifecycle

    async def start(self) -> None:
        """Starts paho's network thread and the consumer task."""
        if self._client is not None:
            raise RuntimeError("MqttIngest is already started")
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._queue = asyncio.Queue()
        self._inbox.clear()
        self._wakeup_pending = False
        self._consumer = asyncio.create_task(self._consume(), name="mqtt-ingest")
        self._consumer.add_done_callback(self._consumer_ended)
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if self._settings.mqtt.username is not None:
            password = self._settings.mqtt.password
            client.username_pw_set(
                self._settings.mqtt.username,
                None if password is None else password.get_secret_value(),
            )
        if self._settings.mqtt.tls:
            ca_file = self._settings.mqtt.ca_file
            client.tls_set(ca_certs=None if ca_file is None else str(ca_file))
        client.reconnect_delay_set(*self._reconnect_delay_secs)
        client.on_log = self._on_log
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry_secs
        properties.ReceiveMaximum = self.receive_maximum
        client.connect_async(
            self._settings.mqtt.host,
            self._settings.mqtt.port,
            keepalive=KEEPALIVE_SECS,
            clean_start=False,
            properties=properties,
        )
        self._client = client
        client.loop_start()
        log.info(
            "mqtt ingest started",
            subscription=self.subscription,
            host=self._settings.mqtt.host,
            port=self._settings.mqtt.port,
            tls=self._settings.mqtt.tls,
            client_id=self.client_id,
        )

    async def stop(self) -> None:
        """Finishes the batch in hand (up to ``stop_timeout_secs``), then disconnects; the
        session, with whatever is unacknowledged, stays with the broker."""
        self._stopping = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            if self._busy:
                await asyncio.wait({consumer}, timeout=self._stop_timeout_secs)
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            # loop_stop joins paho's thread: not on the event loop's thread.
            await asyncio.to_thread(client.loop_stop)
        self._subscribed = False
        self._ready.clear()

    def _on_log(self, _client: paho.Client, _userdata: object, level: int, message: str) -> None:
        """paho's log, on ours. After a disconnect we asked for, paho 2.2's loop thread runs
        once more and logs "Client is not connected" as an error: that one is dropped."""
        if self._stopping and message.startswith("Client is not connected"):
            return
        paho_logger.log(paho.LOGGING_LEVEL[LogLevel(level)], message)

    @property
    def connected(self) -> bool:
        """Connected, subscribed, and the consumer running: readings are flowing."""
        return (
            self._subscribed
            and self._client is not None
            and self._client.is_connected()
            and self._consumer is not None
            and not self._consumer.done()
        )

    @property
    def queue_depth(self) -> int:
        """Messages received and not yet handed to the pipeline."""
        return self._queue.qsize() + len(self._inbox)

    async def wait_connected(self, timeout_secs: float) -> bool:
        """Whether the subscription is in place within ``timeout_secs``."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout_secs)
        except TimeoutError:
            return False
        return self.connected

    # paho's network thread: hand over and return

    def _to_loop(self, callback: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(callback, *args)

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection", reason=str(reason_code))
            return
        self._epoch += 1
        self.stats.connects += 1
        # Retained readings (a meter may set the flag) come once, not on every reconnect.
        options = SubscribeOptions(QOS, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        _, self._subscribe_mid = client.subscribe(self.subscription, options=options)
        log.info("connected to the broker", session_present=flags.session_present)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if mid != self._subscribe_mid:
            return
        failed = [code for code in reason_codes if code.is_failure]
        if failed:
            log.error(
                "broker refused the subscription",
                subscription=self.subscription,
                reasons=[str(code) for code in failed],
            )
            return
        self._subscribed = True
        self._to_loop(self._ready.set)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._subscribed = False
        self._to_loop(self._ready.clear)
        self.stats.disconnects += 1
        if not self._stopping:
            log.warning("disconnected from the broker, reconnecting", reason=str(reason_code))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # decode_message reports it as malformed
            topic = ""
        inbound = _Inbound(
            topic, bytes(message.payload), message.mid, message.qos, self._epoch, time.monotonic()
        )
        self._inbox.append(inbound)
        if not self._wakeup_pending:
            self._wakeup_pending = True
            self._to_loop(self._take_inbox)

    def _take_inbox(self) -> None:
        """On the loop: everything paho's thread appended since the last wake-up, in order.
        The flag drops first: a message appended after it asks for a wake-up of its own."""
        self._wakeup_pending = False
        inbox, queue = self._inbox, self._queue
        while inbox:
            queue.put_nowait(inbox.popleft())

    # The event loop: batches into the pipeline

    def _consumer_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("mqtt ingest stopped", exc_info=task.exception())

    async def _consume(self) -> None:
        while not self._stopping:
            batch = [await self._queue.get()]
            self._busy = True
            try:
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._process(batch)
            finally:
                self._busy = False

    async def _process(self, batch: list[_Inbound]) -> None:
        received = sum(not m.retry for m in batch)
        self.stats.received += received
        parsed: list[Submission | Outcome] = []
        for inbound in batch:
            try:
                parsed.append(decode_message(self.prefix, inbound.topic, inbound.payload))
            except MalformedMessage as error:
                parsed.append(
                    Outcome(Status.rejected, Reason.MalformedSubmission, None, str(error))
                )
        submissions = [p for p in parsed if isinstance(p, Submission)]
        started = time.monotonic()
        stored: list[Outcome] = []
        if submissions:
            result = await self._submit(submissions)
            if result is None:  # stopping before the pipeline took them: nothing is acknowledged
                return
            stored = result
        submit_secs = time.monotonic() - started
        answers = iter(stored)
        outcomes = [next(answers) if isinstance(p, Submission) else p for p in parsed]
        for inbound, outcome in zip(batch, outcomes, strict=True):
            if outcome.reason in TRANSIENT_REASONS:
                self.stats.retried += 1
                self._later(inbound)
                continue
            self._count(outcome)
            if outcome.status is Status.rejected:
                self._dead_letter(inbound, outcome)
            self._ack(inbound)
        self.stats.batches += 1
        if self._observe is not None:
            now = time.monotonic()
            latencies = [now - m.arrived for m in batch]
            report = BatchReport(outcomes, latencies, submit_secs, received)
            try:
                self._observe(report)
            except Exception:  # metrics must never stop ingestion
                log.exception("mqtt batch observer failed")

    async def _submit(self, submissions: list[Submission]) -> list[Outcome] | None:
        """The pipeline's outcomes, retrying with backoff while it fails (a message must not be
        acknowledged unstored, and the broker resends only on a new connection); ``None`` once
        stopping."""
        delay = SUBMIT_RETRY_FIRST_SECS
        while True:
            try:
                outcomes = await self._pipeline.submit(submissions)
            except Exception:
                self.stats.submit_failures += 1
                log.exception("storing mqtt readings failed, retrying", readings=len(submissions))
                if self._stopping:
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, SUBMIT_RETRY_MAX_SECS)
                continue
            if len(outcomes) != len(submissions):
                raise RuntimeError(
                    f"the pipeline answered {len(outcomes)} outcomes to {len(submissions)} readings"
                )
            return outcomes

    def _later(self, inbound: _Inbound) -> None:
        """Queues the message again after a pause, still unacknowledged."""
        queue, again = self._queue, dataclasses.replace(inbound, retry=True)
        asyncio.get_running_loop().call_later(TRANSIENT_RETRY_SECS, queue.put_nowait, again)

    def _count(self, outcome: Outcome) -> None:
        if outcome.status is Status.accepted:
            self.stats.accepted += 1
        elif outcome.status is Status.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.rejected[outcome.reason or Reason.MalformedSubmission] += 1

    def _dead_letter(self, inbound: _Inbound, outcome: Outcome) -> None:
        segment = meter_segment(self.prefix, inbound.topic)
        log.debug(
            "reading rejected",
            meter=segment,
            topic=inbound.topic,
            reason=str(outcome.reason),
            detail=outcome.detail,
        )
        if segment is None or self._client is None:
            return
        topic = rejected_topic(self._settings.mqtt.topic_root, self.market, segment)
        self._client.publish(topic, dead_letter(outcome), qos=QOS)
        self.stats.dead_letters += 1

    def _ack(self, inbound: _Inbound) -> None:
        # A message from an earlier connection comes again on this one (or its session is gone
        # with a restarted broker); its old packet id would acknowledge something else.
        if self._client is not None and inbound.epoch == self._epoch:
            self._client.ack(inbound.mid, inbound.qos)
