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
)

# Every accepted reading, exactly as the meter signed it; ``attested_at`` is set once the chain
# holds it (``attest_signature`` the transaction's), or once it never can (``refused`` names why:
# the program's error, or MeterReplaced). A reading still waiting keeps in ``refused`` the
# program's error of the last attestation the chain refused (one it may take later).
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
    UniqueConstraint("meter", "counter", name="uq_readings_meter_counter"),
    # With the counter in it, a meter's first unattested reading is one index seek (``due``).
    Index("ix_readings_unattested", "attested_at", "meter", "counter"),
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
    Index("ix_trades_state", "state", "next_check_at"),
    Index("ix_trades_payout_originator_id", "payout_originator_id"),
    Index("ix_trades_payout_conversation_id", "payout_conversation_id"),
    Index("ix_trades_status_conversation_id", "status_conversation_id"),
    Index("ix_trades_refund_originator_id", "refund_originator_id"),
    Index("ix_trades_refund_conversation_id", "refund_conversation_id"),
    Index("ix_trades_idempotency_key", "idempotency_key", unique=True),
    # A buyer's recent orders: a repeat without a key is refused (``TradeDesk``).
    Index("ix_trades_buyer_recent", "buyer_phone_hash", "created_at"),
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
