"""The oracle's database schema: every table, readings' and trades' alike, on one ``metadata``.

Alembic's migrations (``migrations/versions``) build exactly this schema, on SQLite and
PostgreSQL; ``tests/oracle/test_migrations.py`` holds the two to each other.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# Longest Idempotency-Key kept (Stripe's limit), callback key (CheckoutRequestID or a payout's
# id) and M-Pesa receipt: a callback with a longer one is refused before it is stored.
IDEMPOTENCY_KEY_CHARS = 255
CALLBACK_KEY_CHARS = 64
CALLBACK_RECEIPT_CHARS = 32

# Auto-incremented ids: SQLite only auto-increments an INTEGER PRIMARY KEY.
AUTO_ID = BigInteger().with_variant(Integer(), "sqlite")

# Readings (``readings.store``): each meter's progress, every accepted reading, the market's
# address lookup tables.

# One row per meter the oracle has seen: the last reading it accepted (its next reading must
# follow it) and the last reading the chain has attested.
#
# ``first_waiting_*`` is its first reading still waiting for the chain (``attested_at`` null):
# its counter, and its timestamp and received_at copied from it (null when none waits). A
# meter's readings are attested or closed as a prefix of its counters, so the waiting ones run
# from it to the last accepted. The store keeps it (``readings.store``: set when a meter goes
# from nothing waiting to something waiting, moved on when readings are attested or closed,
# under the meter's row lock) so that the batcher finds the meters due in this table's index,
# not in every month of ``readings``; its timestamp finds the reading in one month.
meters = Table(
    "meters",
    metadata,
    Column("meter", String(44), primary_key=True),
    Column("household", String(44), nullable=False),
    Column("has_last", Boolean, nullable=False),
    Column("last_counter", BigInteger, nullable=False),
    Column("last_timestamp", BigInteger, nullable=False),
    Column("last_exported_wh", BigInteger, nullable=False),
    Column("last_imported_wh", BigInteger, nullable=False),
    Column("attested_counter", BigInteger, nullable=True),
    Column("attested_exported_wh", BigInteger, nullable=True),
    Column("first_waiting_counter", BigInteger, nullable=True),
    Column("first_waiting_timestamp", BigInteger, nullable=True),
    Column("first_waiting_received_at", Float, nullable=True),
    # The market's most silent meters first, and how many are silent (``operators.reads``).
    Index("ix_meters_last_timestamp", "last_timestamp", "meter"),
    # The meters with readings waiting, the longest waiting first (``Store.due``): only those.
    Index(
        "ix_meters_first_waiting",
        "first_waiting_received_at",
        "meter",
        sqlite_where=text("first_waiting_counter IS NOT NULL"),
        postgresql_where=text("first_waiting_counter IS NOT NULL"),
    ),
)

# Every accepted reading, exactly as the meter signed it; ``attested_at`` is set once the chain
# holds it (``attest_signature`` the transaction's), or once it never can (``refused`` names why:
# the program's error, or MeterReplaced). A reading still waiting keeps in ``refused`` the
# program's error of the last attestation the chain refused (one it may take later).
#
# On PostgreSQL the table is partitioned by month of the meter's ``timestamp``
# (``storage.partitions`` makes the months ahead and drops those retention has emptied); on
# SQLite it is one table. A partitioned table's unique keys must hold its partition key, so on
# PostgreSQL the primary key is (id, timestamp) and a meter's counter is unique with its
# timestamp: a reading sent again (same counter, same signed timestamp) still meets its first
# copy in one partition, and another reading reusing a counter is refused by the counter rule
# (``meters``' last reading) before it is stored.
READINGS_PARTITION_KEY = "timestamp"
readings = Table(
    "readings",
    metadata,
    Column("id", AUTO_ID, primary_key=True),
    Column("meter", String(44), nullable=False),
    Column("counter", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("exported_wh", BigInteger, nullable=False),
    Column("imported_wh", BigInteger, nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("attested_at", Float, nullable=True),
    Column("attest_signature", String(88), nullable=True),
    Column("refused", String(40), nullable=True),
    UniqueConstraint("meter", "counter", name="uq_readings_meter_counter").ddl_if(dialect="sqlite"),
    UniqueConstraint(
        "meter", "counter", READINGS_PARTITION_KEY, name="uq_readings_meter_counter_timestamp"
    ).ddl_if(dialect="postgresql"),
    # With the counter in it, a meter's first unattested reading is one index seek (``due``).
    Index("ix_readings_unattested", "attested_at", "meter", "counter"),
    # A meter's readings of one day, and its last one before, are an index range
    # (``households.reads``); the counter orders readings sharing a timestamp.
    Index("ix_readings_meter_timestamp", "meter", "timestamp", "counter"),
    # The readings the chain refused, by reason (``operators.reads``): only those rows, so a
    # reading stored as it arrives (``refused`` null) costs the index nothing.
    Index(
        "ix_readings_refused",
        "refused",
        "meter",
        "attested_at",
        sqlite_where=text("refused IS NOT NULL"),
        postgresql_where=text("refused IS NOT NULL"),
    ),
    postgresql_partition_by=f"RANGE ({READINGS_PARTITION_KEY})",
)

# The market's address lookup tables, each stored before the transaction creating it is sent:
# the address derives from the oracle and ``recent_slot``.
lookup_tables = Table(
    "lookup_tables",
    metadata,
    Column("address", String(44), primary_key=True),
    Column("market", String(44), nullable=False),
    Column("recent_slot", BigInteger, nullable=False),
)

# Meters asked to be attested at once (``POST /api/v1/meters/{meter}/attest``), through any
# replica: the attester takes them at its next round.
attest_requests = Table(
    "attest_requests",
    metadata,
    Column("meter", String(44), primary_key=True),
    Column("requested_at", Float, nullable=False),
)

# Each market's attester lease: the one replica that attests it now (``readings.lease``). The
# token grows by one at every takeover, and each of the attester's writes checks it, so a
# deposed attester's writes are refused; ``expires_at`` is on the database's clock.
attester_leases = Table(
    "attester_leases",
    metadata,
    Column("market", String(44), primary_key=True),
    Column("holder", String(100), nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False),
)


# Trades (``trading.ledger``): each trade's state and history, every Daraja callback as received,
# the phone directory.

# One row per trade: its state, its amounts, both phones (encrypted), what Daraja and the chain
# answered, and when the worker looks at it next.
trades = Table(
    "trades",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("market", String(44), nullable=False),
    Column("offer", String(44), nullable=False),
    Column("seller", String(44), nullable=False),
    Column("buyer", String(44), nullable=False),
    # The trade's address on chain, from the offer and ``trade_index`` (the offer's counter when
    # the trade was opened), each recorded before the open is sent.
    Column("trade_address", String(44), nullable=False),
    Column("trade_index", BigInteger, nullable=True),
    Column("payment_ref_hash", LargeBinary(32), nullable=False),
    Column("wh", BigInteger, nullable=False),
    Column("price_cents_per_kwh", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("fee_cents", BigInteger, nullable=False),
    Column("payout_kes", BigInteger, nullable=False),
    Column("buyer_phone", LargeBinary, nullable=False),
    Column("buyer_phone_hash", String(64), nullable=False),
    Column("seller_phone", LargeBinary, nullable=False),
    Column("deadline", BigInteger, nullable=True),
    Column("give_up_at", Float, nullable=True),
    Column("merchant_request_id", String(64), nullable=True),
    Column("checkout_request_id", String(64), nullable=True, unique=True),
    Column("mpesa_receipt", String(32), nullable=True, unique=True),
    Column("result_code", Integer, nullable=True),
    Column("result_desc", String(200), nullable=True),
    Column("chain_signature", String(88), nullable=True),
    Column("payout_conversation_id", String(64), nullable=True),
    Column("payout_receipt", String(32), nullable=True),
    Column("queries", Integer, nullable=False, default=0),
    Column("next_check_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # The payout's attempt (0 the first; a failed payout is paid again under a new id) and its
    # OriginatorConversationID, recorded before it is sent; ``payout_conversation_id`` is the
    # ConversationID Daraja's reply gave it. Results are matched on either.
    Column("payout_attempts", Integer, nullable=False, default=0),
    Column("payout_originator_id", String(64), nullable=True),
    # The ConversationID of the last Transaction Status query about the trade's payout or
    # refund: the answer carries it.
    Column("status_conversation_id", String(64), nullable=True),
    # Money paid back (``refund.py``): how (reversal, or B2C to the buyer), the request's ids
    # (a reversal's are both Daraja's; a B2C refund's OriginatorConversationID is ours), when
    # Daraja took it, how many sends, and the receipt of the refund.
    Column("refund_method", String(10), nullable=True),
    Column("refund_originator_id", String(64), nullable=True),
    Column("refund_conversation_id", String(64), nullable=True),
    Column("refund_accepted_at", Float, nullable=True),
    Column("refund_attempts", Integer, nullable=False, default=0),
    Column("refund_receipt", String(32), nullable=True),
    # An order's Idempotency-Key (unique while kept), a digest of what was ordered with it, and
    # the answer the order was given (replayed to a repeat of it).
    Column("idempotency_key", String(IDEMPOTENCY_KEY_CHARS), nullable=True),
    Column("request_digest", String(64), nullable=True),
    Column("answer_status", Integer, nullable=True),
    Column("answer_body", LargeBinary, nullable=True),
    # Which oracle replica acts on the trade now, and until when (``Ledger.due``): another
    # takes it over only once the claim has run out.
    Column("claimed_by", String(32), nullable=True),
    Column("claim_until", Float, nullable=True),
    Index("ix_trades_state", "state", "next_check_at"),
    Index("ix_trades_payout_originator_id", "payout_originator_id"),
    Index("ix_trades_payout_conversation_id", "payout_conversation_id"),
    Index("ix_trades_status_conversation_id", "status_conversation_id"),
    Index("ix_trades_refund_originator_id", "refund_originator_id"),
    Index("ix_trades_refund_conversation_id", "refund_conversation_id"),
    Index("ix_trades_idempotency_key", "idempotency_key", unique=True),
    # A buyer's recent orders: a repeat without a key is refused (``TradeDesk``).
    Index("ix_trades_buyer_recent", "buyer_phone_hash", "created_at"),
    # A household's trades, bought and sold (``households.reads``).
    Index("ix_trades_buyer", "buyer", "created_at"),
    Index("ix_trades_seller", "seller", "created_at"),
    # The latest trades in each state (``operators.reads``).
    Index("ix_trades_state_updated", "state", "updated_at"),
)

# Every state a trade went through, and why.
trade_history = Table(
    "trade_history",
    metadata,
    Column("id", AUTO_ID, primary_key=True),
    Column("trade_id", String(32), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("state", String(20), nullable=False),
    Column("detail", String(300), nullable=True),
)

# The Daraja app's one access token, shared by every oracle replica (``trading.token_store``):
# each new token invalidates the previous one. Encrypted: it is a bearer secret for an hour.
daraja_tokens = Table(
    "daraja_tokens",
    metadata,
    Column("app", String(64), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Each callback as Daraja sent it, stored before it is acted on. Each distinct body for a key
# (CheckoutRequestID or OriginatorConversationID) is kept, up to a few (a forged one must not
# crowd out the genuine one that follows); the same body again (``digest``, keyed, of the body as
# received) or the same receipt is a duplicate.
callbacks = Table(
    "callbacks",
    metadata,
    Column("id", AUTO_ID, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("key", String(CALLBACK_KEY_CHARS), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("receipt", String(CALLBACK_RECEIPT_CHARS), nullable=True, unique=True),
    Column("body", LargeBinary, nullable=False),  # encrypted: it holds the payer's phone
    Column("received_at", Float, nullable=False),
    Column("processed_at", Float, nullable=True),
    # A callback that must wait (its trade not known yet, its payment still open) is looked at
    # again from then, not every round.
    Column("retry_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("outcome", String(200), nullable=True),
    # Which oracle replica handles the callback now, and until when (``Ledger.pending_callbacks``).
    Column("claimed_by", String(32), nullable=True),
    Column("claim_until", Float, nullable=True),
    UniqueConstraint("kind", "key", "digest", name="uq_callbacks_kind_key_digest"),
    Index("ix_callbacks_unprocessed", "processed_at", "retry_at"),
)

# Phone numbers the oracle may call (buyers) or pay (sellers), by household.
phones = Table(
    "phones",
    metadata,
    Column("household", String(44), primary_key=True),
    Column("commitment", String(64), nullable=False, unique=True),
    Column("sealed", LargeBinary, nullable=False),
    Column("updated_at", Float, nullable=False),
)


# What an operator did to a trade that needed a person (``trading.attention``), and who.
operator_actions = Table(
    "operator_actions",
    metadata,
    Column("id", AUTO_ID, primary_key=True),
    Column("trade_id", String(32), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("operator", String(100), nullable=False),
    Column("action", String(20), nullable=False),
    Column("reason", String(300), nullable=False),
    Column("from_state", String(20), nullable=False),
    Column("to_state", String(20), nullable=False),
)

# Each reconciliation of the ledger with Daraja (``trading.reconcile``): when, how much it
# asked about, and how many answers disagreed with the ledger.
reconciliations = Table(
    "reconciliations",
    metadata,
    Column("id", AUTO_ID, primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("asked", Integer, nullable=False),
    Column("mismatches", Integer, nullable=False),
)

# Forecasts (``forecast.systems``): each home's PV system, as its household or installer set it.
pv_systems = Table(
    "pv_systems",
    metadata,
    Column("household", String(44), primary_key=True),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("altitude_m", Integer, nullable=False),
    Column("capacity_wp", BigInteger, nullable=False),
    Column("tilt_deg", Float, nullable=False),
    Column("azimuth_deg", Float, nullable=False),
    Column("inverter_limit_w", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Forecast rounds (``forecast.store``): each home's latest outlook and what it has learned,
# the forecasts still waiting for their meter's report (only those the skill scores), and the
# skill so far.

# One row per home, replaced each round: its latest outlook (``series``: production,
# consumption, p10 and p90 surplus, Wh per step, each ``steps`` little-endian int32 from the
# step ending at ``first_end``), and what it learned (its ratio, clear-sky index, and its
# recent errors as int32).
forecast_outlooks = Table(
    "forecast_outlooks",
    metadata,
    Column("household", String(44), primary_key=True),
    Column("made_at", Float, nullable=False),
    Column("source", String(10), nullable=False),
    Column("first_end", BigInteger, nullable=False),
    Column("steps", Integer, nullable=False),
    Column("ratio", Float, nullable=False),
    Column("clear_sky_index", Float, nullable=False),
    Column("series", LargeBinary, nullable=False),
    Column("recent_errors", LargeBinary, nullable=False),
)

# The forecast of one step at one horizon, kept until the meter has reported the step: the
# uncorrected model's production (null without weather), the corrected production, the
# expected consumption and smart persistence's surplus for the same step.
forecast_pending = Table(
    "forecast_pending",
    metadata,
    Column("household", String(44), primary_key=True),
    Column("horizon_secs", Integer, primary_key=True),
    Column("target_end", BigInteger, primary_key=True),
    Column("made_at", Float, nullable=False),
    Column("model_wh", BigInteger, nullable=True),
    Column("production_wh", BigInteger, nullable=False),
    Column("consumption_wh", BigInteger, nullable=False),
    Column("reference_wh", BigInteger, nullable=False),
    Column("daylight", Boolean, nullable=False),
    Index("ix_forecast_pending_target_end", "target_end"),
)

# Each home's skill so far per horizon: daylight steps scored, the sum of the forecast's
# absolute errors and of smart persistence's (Wh).
forecast_skill = Table(
    "forecast_skill",
    metadata,
    Column("household", String(44), primary_key=True),
    Column("horizon_secs", Integer, primary_key=True),
    Column("steps", BigInteger, nullable=False),
    Column("abs_error_wh", BigInteger, nullable=False),
    Column("reference_abs_error_wh", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Auto-sell (``forecast.autosell``): the households that let the oracle keep an offer open for
# their forecast surplus, within their limits, and every automatic offer with why it was made
# and why it was closed.
WHY_CHARS = 1_000
PRINCIPAL_CHARS = 64

auto_sell = Table(
    "auto_sell",
    metadata,
    Column("household", String(44), primary_key=True),
    Column("floor_price_cents_per_kwh", BigInteger, nullable=False),
    Column("share_percent", Integer, nullable=False),
    Column("max_wh_per_offer", BigInteger, nullable=False),
    Column("set_by", String(PRINCIPAL_CHARS), nullable=False),
    Column("updated_at", Float, nullable=False),
)

auto_sell_offers = Table(
    "auto_sell_offers",
    metadata,
    Column("id", AUTO_ID, primary_key=True),
    Column("household", String(44), nullable=False),
    Column("offer", String(44), nullable=False),
    Column("wh", BigInteger, nullable=False),
    Column("price_cents_per_kwh", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("forecast_surplus_wh", BigInteger, nullable=False),
    Column("balance_wh", BigInteger, nullable=False),
    Column("advisor", String(32), nullable=False),
    Column("why", String(WHY_CHARS), nullable=False),
    Column("signature", String(88), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("closed_at", Float, nullable=True),
    Column("closed_why", String(WHY_CHARS), nullable=True),
    Index("ix_auto_sell_offers_household", "household", "id"),
)


# Sign-in (``accounts``): codes sent by SMS, lockouts, operators, sessions, API keys. Nothing a
# caller could sign in with is kept in clear: codes and phones are keyed hashes
# (``accounts.secrets``), session ids, CSRF tokens and API keys SHA-256 digests, passwords
# argon2id hashes.

# Longest operator user name, API key name and the scopes of one key.
USERNAME_CHARS = 64
API_KEY_NAME_CHARS = 100
SCOPES_CHARS = 200

# The one code a phone may sign in with now (a new one replaces it), for its household.
sign_in_codes = Table(
    "sign_in_codes",
    metadata,
    Column("phone_digest", String(64), primary_key=True),
    Column("code_digest", String(64), nullable=False),
    Column("household", String(44), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Wrong codes or passwords in a row, by phone or operator (a keyed digest), and the lockout
# they led to.
sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("subject_digest", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)

# Sign-in requests counted by the rate limits (``accounts.limits``): one row a request, by the
# limit and the keyed digest of its key, until its window is over.
rate_hits = Table(
    "rate_hits",
    metadata,
    Column("id", AUTO_ID, primary_key=True),
    Column("limit_name", String(20), nullable=False),
    Column("key_digest", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_rate_hits_key", "limit_name", "key_digest", "at"),
    Index("ix_rate_hits_at", "at"),
)

# Signatures of the signed changes taken (``http.auth``), each refused a second time, until the
# time they were signed at is out of the signature window.
signed_changes = Table(
    "signed_changes",
    metadata,
    Column("signature", LargeBinary(64), primary_key=True),
    Column("signed_at", Float, nullable=False),
    Index("ix_signed_changes_signed_at", "signed_at"),
)

operators = Table(
    "operators",
    metadata,
    Column("username", String(USERNAME_CHARS), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# A signed-in browser: a household's (``subject`` its address) or an operator's (its user
# name), found by its id's digest; its CSRF token's digest beside it.
sessions = Table(
    "sessions",
    metadata,
    Column("id_digest", String(64), primary_key=True),
    Column("csrf_digest", String(64), nullable=False),
    Column("role", String(20), nullable=False),
    Column("subject", String(USERNAME_CHARS), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_sessions_expires_at", "expires_at"),
)

# Keys an operator issued to an integration: ``nsk_<id>_<secret>``, the secret kept as its
# digest; ``scopes`` space-separated.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("secret_digest", String(64), nullable=False),
    Column("name", String(API_KEY_NAME_CHARS), nullable=False),
    Column("scopes", String(SCOPES_CHARS), nullable=False),
    Column("created_by", String(USERNAME_CHARS), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
)


def built_on(item: object, dialect: str) -> bool:
    """Whether migrations build a schema item on ``dialect``: all but those given to one
    dialect only (``ddl_if``, which schema comparisons do not read by themselves)."""
    condition = getattr(item, "_ddl_if", None)
    if condition is None or condition.dialect is None:
        return True
    wanted = condition.dialect
    return dialect == wanted if isinstance(wanted, str) else dialect in wanted
