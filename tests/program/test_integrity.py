"""Market integrity on LiteSVM: the attacks on the promise that every energy token is metered
energy and money moves only for delivered energy. Each is a real transaction, refused with its
named error, and changes nothing."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.ed25519 import Signed, ed25519_instruction
from nishati_client.market import MarketUpdate
from nishati_client.readings import Reading, SignedReading, sign
from nishati_client.registration import registration_message
from nishati_dev.sandbox import Harness, config_with, set_time
from tests.program import scenario
from tests.program.scenario import (
    OFFER_WH,
    PRICE,
    TRADE_WH,
    Member,
    Meter,
    digest,
    refused,
    world_in,
)

WATTS = 10_000
GRACE_SECS = 600
OPEN_TRADES = 2
DAILY_CAP_WH = 50_000


class World(scenario.World):
    """The attack suites' world on a market with a 10 kW export limit, two open trades per
    buyer and a 50 kWh daily cap; its installer's record is watched too."""

    @property
    def accounts(self) -> list[Pubkey]:
        installer = self.program.installer_record_address(
            self.market.address, self.market.installer.pubkey()
        )
        return [*super().accounts, installer]

    def trade_open(
        self, buyer: Member, wh: int, payment_ref_hash: bytes, trade_index: int
    ) -> Instruction:
        """``buyer``'s ``trade_open`` of the world's offer at ``trade_index``, not sent."""
        return self.program.trade_open(
            payer=self.h.payer.pubkey(),
            authority=buyer.authority.pubkey(),
            market=self.market.address,
            offer=self.offer.address,
            buyer=buyer.address,
            wh=wh,
            payment_ref_hash=payment_ref_hash,
            trade_index=trade_index,
        )


@pytest.fixture
async def w(litesvm: Harness) -> World:
    config = config_with(
        max_export_watts=WATTS,
        cancel_grace_secs=GRACE_SECS,
        max_open_trades_per_buyer=OPEN_TRADES,
        daily_mint_cap_wh=DAILY_CAP_WH,
    )
    return await world_in(litesvm, World, config)


def registration(
    w: World,
    *,
    owner: Keypair,
    meter: Pubkey,
    proof_key: Ed25519PrivateKey,
    installer: Keypair | None = None,
    authority: Keypair | None = None,
    proof_household: Pubkey | None = None,
    proof_market: Pubkey | None = None,
) -> list[Instruction]:
    """A `household_register` transaction for ``owner``'s household, its meter proof signed by
    ``proof_key`` over the registration to ``proof_household`` (the household itself unless
    given) in ``proof_market``."""
    market = w.market.address
    household = w.program.household_address(market, owner.pubkey())
    proof_market = proof_market or market
    proof_household = proof_household or household
    return [
        proof_instruction(proof_key, proof_market, proof_household, meter),
        w.program.household_register(
            payer=w.h.payer.pubkey(),
            owner=owner.pubkey(),
            authority=(authority or owner).pubkey(),
            installer=(installer or w.market.installer).pubkey(),
            market=market,
            meter=meter,
            phone_commitment=digest("phone"),
            ed25519_instruction_index=0,
        ),
    ]


def proof_instruction(
    key: Ed25519PrivateKey, market: Pubkey, household: Pubkey, meter: Pubkey
) -> Instruction:
    """An Ed25519 instruction in which ``key`` signs the registration of ``meter``: a proof
    that verifies, by whoever holds ``key``."""
    message = registration_message(market, household, meter)
    return ed25519_instruction([Signed(key.sign(message), public_key(key), message)])


def public_key(key: Ed25519PrivateKey) -> Pubkey:
    return Meter(Pubkey.default(), key).public_key


def new_household_accounts(w: World, owner: Keypair, meter: Pubkey) -> list[Pubkey]:
    household = w.program.household_address(w.market.address, owner.pubkey())
    return [
        household,
        w.program.energy_account(household),
        w.program.meter_record_address(w.market.address, meter),
    ]


def meter_key() -> tuple[Ed25519PrivateKey, Pubkey]:
    key = Ed25519PrivateKey.generate()
    return key, public_key(key)


# Meter identity: an installer vouches, the meter proves it holds its key


async def test_a_software_key_without_an_approved_installer_is_refused(w: World) -> None:
    owner, (key, meter) = Keypair(), meter_key()
    rogue = Keypair()
    await w.expect(
        "InstallerNotApproved",
        lambda: w.send(
            registration(w, owner=owner, meter=meter, proof_key=key, installer=rogue),
            owner,
            rogue,
        ),
        new_household_accounts(w, owner, meter),
    )


async def test_a_removed_installer_vouches_for_no_new_meter(w: World) -> None:
    installer = w.market.installer
    record = w.program.installer_record_address(w.market.address, installer.pubkey())
    await w.h.client.installer_remove(
        payer=w.h.payer,
        admin=w.market.admin,
        market=w.market.address,
        installer=installer.pubkey(),
        rent_receiver=w.h.payer.pubkey(),
    )
    assert await w.h.chain.account(record) is None
    owner, (key, meter) = Keypair(), meter_key()
    await refused(
        w.h,
        "InstallerNotApproved",
        new_household_accounts(w, owner, meter),
        lambda: w.send(registration(w, owner=owner, meter=meter, proof_key=key), owner, installer),
    )


async def test_only_the_admin_approves_installers(w: World) -> None:
    installer = Keypair().pubkey()
    record = w.program.installer_record_address(w.market.address, installer)
    await w.expect(
        "NotMarketAdmin",
        lambda: w.h.client.installer_add(
            payer=w.h.payer, admin=w.stranger, market=w.market.address, installer=installer
        ),
        [record],
    )


async def test_an_installer_without_the_meters_proof_is_refused(w: World) -> None:
    owner, (_, meter) = Keypair(), meter_key()
    other_key, _ = meter_key()
    installer = w.market.installer
    # The proof is signed by another key than the meter's.
    forged = registration(w, owner=owner, meter=meter, proof_key=other_key)
    await w.expect(
        "InvalidMeterRegistration",
        lambda: w.send(forged, owner, installer),
        new_household_accounts(w, owner, meter),
    )
    # No Ed25519 instruction at all: the index names the register instruction itself.
    bare = registration(w, owner=owner, meter=meter, proof_key=other_key)[1:]
    await w.expect(
        "MissingEd25519Instruction",
        lambda: w.send(bare, owner, installer),
        new_household_accounts(w, owner, meter),
    )


async def test_a_proof_for_another_household_or_market_is_refused(w: World) -> None:
    owner, (key, meter) = Keypair(), meter_key()
    installer = w.market.installer
    for proof in (
        registration(w, owner=owner, meter=meter, proof_key=key, proof_household=w.seller.address),
        registration(w, owner=owner, meter=meter, proof_key=key, proof_market=Keypair().pubkey()),
    ):
        await w.expect(
            "InvalidMeterRegistration",
            lambda proof=proof: w.send(proof, owner, installer),  # type: ignore[misc]
            new_household_accounts(w, owner, meter),
        )


async def test_nobody_squats_a_victims_meter_key(w: World) -> None:
    """The attacker has the victim's meter's proof for the victim's own household (it travels
    in the victim's registration) and an approved installer; the proof binds the household."""
    victim_owner, (victim_key, victim_meter) = Keypair(), meter_key()
    victim_household = w.program.household_address(w.market.address, victim_owner.pubkey())
    squatter = Keypair()
    replayed = registration(
        w,
        owner=squatter,
        meter=victim_meter,
        proof_key=victim_key,
        proof_household=victim_household,
    )
    await w.expect(
        "InvalidMeterRegistration",
        lambda: w.send(replayed, squatter, w.market.installer),
        new_household_accounts(w, squatter, victim_meter),
    )


async def test_the_oracle_cannot_register_a_wallet_users_address_as_custodial(w: World) -> None:
    wallet_user, (key, meter) = Keypair(), meter_key()
    ixs = registration(w, owner=wallet_user, meter=meter, proof_key=key, authority=w.market.oracle)
    register = ixs[1]
    metas = [
        AccountMeta(m.pubkey, False, m.is_writable) if m.pubkey == wallet_user.pubkey() else m
        for m in register.accounts
    ]
    unsigned = [ixs[0], Instruction(register.program_id, bytes(register.data), metas)]
    await w.expect(
        "MissingSignature",
        lambda: w.send(unsigned, w.market.oracle, w.market.installer),
        new_household_accounts(w, wallet_user, meter),
    )


async def test_a_meter_change_needs_an_installer_and_the_new_meters_proof(w: World) -> None:
    home = await w.market.household(w.seller)
    _, new_meter = meter_key()
    other_key, _ = meter_key()
    ixs = [
        proof_instruction(other_key, w.market.address, w.seller.address, new_meter),
        w.program.household_set_meter(
            payer=w.h.payer.pubkey(),
            authority=w.seller.authority.pubkey(),
            installer=w.market.installer.pubkey(),
            household=home,
            meter=new_meter,
            ed25519_instruction_index=0,
        ),
    ]
    new_record = [w.program.meter_record_address(w.market.address, new_meter)]
    await w.expect(
        "InvalidMeterRegistration",
        lambda: w.send(ixs, w.seller.authority, w.market.installer),
        new_record,
    )
    rogue = Keypair()
    unapproved = w.program.household_set_meter(
        payer=w.h.payer.pubkey(),
        authority=w.seller.authority.pubkey(),
        installer=rogue.pubkey(),
        household=home,
        meter=new_meter,
        ed25519_instruction_index=0,
    )
    await w.expect(
        "InstallerNotApproved",
        lambda: w.send([ixs[0], unapproved], w.seller.authority, rogue),
        new_record,
    )


# No back-dated baselines, no unbounded mint


def reading(meter: Meter, timestamp: int, exported_wh: int) -> SignedReading:
    """``meter``'s next reading with a cumulative export of ``exported_wh``."""
    meter.counter += 1
    meter.exported_wh = exported_wh
    r = Reading.for_market(meter.market, meter.counter, timestamp, exported_wh, meter.imported_wh)
    return sign(r, meter.key)


async def test_a_back_dated_baseline_is_refused(w: World) -> None:
    member = await w.market.register()
    attack = reading(member.meter, 0, 0)
    await w.expect(
        "ReadingBeforeMeterRegistered",
        lambda: w.market.attest((member, attack)),
        [member.address, member.energy_account],
    )
    # One second before registration is refused too; at registration it is a baseline.
    registered = (await w.market.household(member)).meter_since
    await w.expect(
        "ReadingBeforeMeterRegistered",
        lambda: w.market.attest((member, reading(member.meter, registered - 1, 0))),
        [member.address],
    )
    await w.market.attest((member, reading(member.meter, registered, 0)))
    assert (await w.market.household(member)).has_baseline


async def test_fifty_years_of_export_in_one_reading_is_refused(w: World) -> None:
    """The first attack of the issue: 20 kW over fifty years, dated now, after a baseline."""
    member = await w.market.register()
    now = await w.market.now()
    await w.market.attest((member, reading(member.meter, now, 0)))
    set_time(w.h, now + 60)
    fifty_years_wh = 20_000 * 50 * 365 * 24
    await w.expect(
        "ExportAboveMeterLimit",
        lambda: w.market.attest((member, reading(member.meter, now + 60, fifty_years_wh))),
        [member.address, member.energy_account],
    )


async def test_export_is_capped_by_chain_time_not_the_meters(w: World) -> None:
    member = await w.market.register()
    now = await w.market.now()
    await w.market.attest((member, reading(member.meter, now, 0)))
    set_time(w.h, now + 360)  # 10 kW over 360 s: 1,000 Wh.
    # The meter claims a whole day passed on its own clock; the chain says 6 minutes.
    await w.expect(
        "ExportAboveMeterLimit",
        lambda: w.market.attest((member, reading(member.meter, now + 300, 1_001))),
        [member.address, member.energy_account],
    )
    await w.market.attest((member, reading(member.meter, now + 300, 1_000)))
    assert await w.market.balance(member) == 1_000
    # The allowance starts again from this attestation: nothing more in the same second.
    await w.expect(
        "ExportAboveMeterLimit",
        lambda: w.market.attest((member, reading(member.meter, now + 300, 1_001))),
        [member.address, member.energy_account],
    )


async def test_the_daily_mint_cap_bounds_even_an_honest_oracle(w: World) -> None:
    day = await w.market.now() // 86_400 + 1
    set_time(w.h, day * 86_400 + 10)
    member = await w.market.register()
    start = await w.market.now()
    await w.market.attest((member, reading(member.meter, start, 0)))
    set_time(w.h, start + 6 * 3_600)  # 10 kW for 6 hours allows 60 kWh; the cap allows 50.
    now = await w.market.now()
    failure = await w.expect(
        "MintCeilingReached",
        lambda: w.market.attest((member, reading(member.meter, now, DAILY_CAP_WH + 1))),
        [member.address, member.energy_account],
    )
    hits = [e for e in w.program.events(failure.logs) if e.name == "MintCeilingHit"]
    assert [(h.data.refused_wh, h.data.daily_mint_cap_wh, h.data.day) for h in hits] == [
        (DAILY_CAP_WH + 1, DAILY_CAP_WH, day)
    ]
    member.meter.counter -= 1
    await w.market.attest((member, reading(member.meter, now, DAILY_CAP_WH)))
    assert (await w.h.client.market(w.market.address)).minted_today_wh == DAILY_CAP_WH
    set_time(w.h, now + 10)
    await w.expect(
        "MintCeilingReached",
        lambda: w.market.attest((member, reading(member.meter, now + 10, DAILY_CAP_WH + 1))),
        [member.address],
    )
    member.meter.counter -= 1
    # The admin raises the cap, or the day turns: minting goes on.
    await w.h.client.market_update(
        payer=w.h.payer,
        admin=w.market.admin,
        market=w.market.address,
        update=MarketUpdate(daily_mint_cap_wh=DAILY_CAP_WH + 10),
    )
    await w.market.attest((member, reading(member.meter, now + 10, DAILY_CAP_WH + 10)))
    set_time(w.h, (day + 1) * 86_400 + 1)
    await w.market.attest((member, reading(member.meter, (day + 1) * 86_400, DAILY_CAP_WH + 2_010)))
    market = await w.h.client.market(w.market.address)
    assert (market.mint_day, market.minted_today_wh) == (day + 1, 2_000)
    assert await w.market.balance(member) == DAILY_CAP_WH + 2_010


# A trade's address is never reused, and a settlement says what it settles


async def test_a_closed_trades_address_is_never_opened_again(w: World) -> None:
    """The second attack of the issue: after the paid trade closes, a stranger's trade at the
    same address. The index has moved on, so the old address cannot be named."""
    await w.market.settle(w.trade)
    assert await w.h.chain.account(w.trade.address) is None
    offer = await w.h.client.offer(w.offer.address)
    assert offer.next_trade_index == 1
    attacker = await w.market.register()
    reuse = w.trade_open(attacker, OFFER_WH - TRADE_WH, w.trade.payment_ref_hash, 0)
    await w.expect(
        "StaleTradeIndex",
        lambda: w.send([reuse], attacker.authority),
        [attacker.address],
    )
    # Naming the next index but the old address fails on the address.
    metas = [
        AccountMeta(w.trade.address, m.is_signer, m.is_writable)
        if m.pubkey == w.program.trade_address(w.offer.address, 1)
        else m
        for m in w.trade_open(attacker, 1, digest("x"), 1).accounts
    ]
    swapped = Instruction(reuse.program_id, bytes(reuse.data), metas)
    await w.expect(
        "StaleTradeIndex", lambda: w.send([swapped], attacker.authority), [attacker.address]
    )


async def test_trade_open_checks_the_bump_it_is_given(w: World) -> None:
    honest = w.trade_open(w.buyer, 10, digest("bump"), 1)
    data = bytearray(bytes(honest.data))
    data[-1] = (data[-1] - 1) % 256
    wrong_bump = Instruction(honest.program_id, bytes(data), honest.accounts)
    await w.expect("InvalidTradeAddress", lambda: w.send([wrong_bump], w.buyer.authority))


@pytest.mark.parametrize(
    ("terms", "error"),
    [
        ({"buyer": "seller"}, "SettlementBuyerMismatch"),
        ({"wh": TRADE_WH + 1}, "SettlementAmountMismatch"),
        ({"total_cents": 1}, "SettlementAmountMismatch"),
    ],
)
async def test_a_settlement_names_the_trade_it_settles(
    w: World, terms: dict[str, object], error: str
) -> None:
    expected: dict[str, object] = {
        "buyer": w.trade.buyer,
        "wh": w.trade.wh,
        "total_cents": w.trade.total_cents,
    }
    expected |= {k: (w.seller.address if v == "seller" else v) for k, v in terms.items()}
    ix = w.program.trade_settle(
        oracle=w.market.oracle.pubkey(),
        trade=w.trade,
        receipt_hash=digest("receipt"),
        **expected,  # type: ignore[arg-type]
    )
    await w.expect(error, lambda: w.send([ix], w.market.oracle))


async def test_a_stranger_cannot_cancel_a_trade_in_its_grace(w: World) -> None:
    cancel = w.program.trade_cancel(caller=w.stranger.pubkey(), trade=w.trade)
    await w.expect("TradeDeadlineNotReached", lambda: w.send([cancel], w.stranger))
    set_time(w.h, w.trade.deadline + 1)
    await w.expect("TradeInGracePeriod", lambda: w.send([cancel], w.stranger))
    set_time(w.h, w.trade.deadline + GRACE_SECS)
    await w.expect("TradeInGracePeriod", lambda: w.send([cancel], w.stranger))
    # Inside the grace the oracle still settles the paid trade; a fresh world's trade shows
    # that after the grace the stranger's cancel goes through.
    set_time(w.h, w.trade.deadline + GRACE_SECS + 1)
    await w.send([cancel], w.stranger)
    assert await w.h.chain.account(w.trade.address) is None
    assert (await w.market.household(w.buyer)).open_trades == 0


async def test_the_oracle_settles_a_paid_trade_inside_the_grace(w: World) -> None:
    set_time(w.h, w.trade.deadline + GRACE_SECS // 2)
    await w.market.settle(w.trade)
    assert await w.market.balance(w.buyer) == TRADE_WH


# Reservations cost the reserver


async def test_a_buyer_holds_at_most_the_markets_open_trades(w: World) -> None:
    second = await w.market.open_trade(w.offer, w.buyer, 10)
    third = w.trade_open(w.buyer, 10, digest("third"), 2)
    assert (await w.market.household(w.buyer)).open_trades == OPEN_TRADES
    await w.expect(
        "TooManyOpenTrades",
        lambda: w.send([third], w.buyer.authority),
        [second.address, w.program.trade_address(w.offer.address, 2)],
    )
    await w.market.settle(second)
    await w.send([third], w.buyer.authority)
    assert (await w.market.household(w.buyer)).open_trades == OPEN_TRADES


# Duplicate accounts: one account in two roles that must differ is named


def duplicated(ix: Instruction, keep: int, replace: int) -> Instruction:
    """``ix`` with account ``replace`` swapped for account ``keep``."""
    metas = list(ix.accounts)
    kept = metas[keep]
    metas[replace] = AccountMeta(kept.pubkey, metas[replace].is_signer, True)
    metas[keep] = AccountMeta(kept.pubkey, kept.is_signer, True)
    return Instruction(ix.program_id, bytes(ix.data), metas)


async def duplicate_cases(w: World) -> list[tuple[str, list[Instruction], list[Keypair]]]:
    """Each instruction as the program would accept it, with each pair of its data accounts
    (those it reads or writes as its own or as token accounts) made one."""
    p, m = w.program, w.market
    payer = w.h.payer.pubkey()
    seller = await m.household(w.seller)
    owner, (key, meter) = Keypair(), meter_key()
    new_key, new_meter = meter_key()
    register = registration(w, owner=owner, meter=meter, proof_key=key)
    set_meter = [
        proof_instruction(new_key, m.address, w.seller.address, new_meter),
        p.household_set_meter(
            payer=payer,
            authority=w.seller.authority.pubkey(),
            installer=m.installer.pubkey(),
            household=seller,
            meter=new_meter,
            ed25519_instruction_index=0,
        ),
    ]
    signed = w.seller.meter.read(await m.now())
    attest = p.attest_readings(
        oracle=m.oracle.pubkey(), market=m.address, readings=[(signed, w.seller.address)]
    )
    singles: list[tuple[str, list[Instruction], list[Keypair]]] = [
        (
            "market_update",
            [
                p.market_update(
                    admin=m.admin.pubkey(), market=m.address, update=MarketUpdate(fee_bps=1)
                )
            ],
            [m.admin],
        ),
        (
            "installer_add",
            [
                p.installer_add(
                    payer=payer,
                    admin=m.admin.pubkey(),
                    market=m.address,
                    installer=Keypair().pubkey(),
                )
            ],
            [m.admin],
        ),
        (
            "installer_remove",
            [
                p.installer_remove(
                    admin=m.admin.pubkey(),
                    market=m.address,
                    installer=m.installer.pubkey(),
                    rent_receiver=payer,
                )
            ],
            [m.admin],
        ),
        ("household_register", register, [owner, m.installer]),
        ("household_set_meter", set_meter, [w.seller.authority, m.installer]),
        ("meter_attest", attest, [m.oracle]),
        (
            "offer_create",
            [
                p.offer_create(
                    payer=payer,
                    authority=w.seller.authority.pubkey(),
                    household=seller,
                    wh=1,
                    price_cents_per_kwh=PRICE,
                    expires_at=await m.now() + 600,
                )
            ],
            [w.seller.authority],
        ),
        (
            "offer_cancel",
            [p.offer_cancel(caller=w.seller.authority.pubkey(), offer=w.offer)],
            [w.seller.authority],
        ),
        (
            "trade_open",
            [w.trade_open(w.buyer, 1, digest("dup"), 1)],
            [w.buyer.authority],
        ),
        (
            "trade_settle",
            [
                p.trade_settle(
                    oracle=m.oracle.pubkey(),
                    trade=w.trade,
                    receipt_hash=digest("r"),
                    buyer=w.trade.buyer,
                    wh=w.trade.wh,
                    total_cents=w.trade.total_cents,
                )
            ],
            [m.oracle],
        ),
        ("trade_cancel", [p.trade_cancel(caller=m.oracle.pubkey(), trade=w.trade)], [m.oracle]),
        (
            "energy_redeem",
            [
                p.energy_redeem(
                    authority=w.seller.authority.pubkey(),
                    market=m.address,
                    household=w.seller.address,
                    wh=1,
                )
            ],
            [w.seller.authority],
        ),
    ]
    fixed = {
        Pubkey.from_string("11111111111111111111111111111111"),
        Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"),
        Pubkey.from_string("Sysvar1nstructions1111111111111111111111111"),
    }
    cases = []
    for name, ixs, signers in singles:
        ix = ixs[-1]
        data_roles = [
            i
            for i, meta in enumerate(ix.accounts)
            if not meta.is_signer and meta.pubkey not in fixed
        ]
        for a_at, a in enumerate(data_roles):
            for b in data_roles[a_at + 1 :]:
                if name == "meter_attest" and b > 4:
                    continue
                cases.append((f"{name}:{a}={b}", [*ixs[:-1], duplicated(ix, a, b)], signers))
    return cases


async def test_one_account_in_two_roles_is_named_in_every_instruction(w: World) -> None:
    cases = await duplicate_cases(w)
    assert len(cases) > 40
    for label, ixs, signers in cases:

        async def send(ixs: list[Instruction] = ixs, signers: list[Keypair] = signers) -> None:
            await w.send(ixs, *signers)

        failure = await w.expect("DuplicateAccount", send)
        assert failure.name == "DuplicateAccount", label


# The honest path keeps working


async def test_an_installed_meter_mints_exactly_its_export_and_a_paid_trade_settles(
    w: World,
) -> None:
    member = await w.market.register()
    start = await w.market.now()
    await w.market.attest((member, reading(member.meter, start, 12_345)))
    assert await w.market.balance(member) == 0  # A baseline mints nothing.
    set_time(w.h, start + 3_600)
    await w.market.attest((member, reading(member.meter, start + 3_600, 12_345 + 7_777)))
    assert await w.market.balance(member) == 7_777
    home = await w.market.household(member)
    assert (home.meter_exported_wh, home.total_exported_wh) == (12_345 + 7_777, 7_777)
    assert home.installer == w.market.installer.pubkey()
    offer = await w.market.offer(member, 7_000, PRICE)
    trade = await w.market.open_trade(offer, w.buyer, 2_500)
    assert trade.trade_index == 0
    assert trade.address == w.program.trade_address(offer.address, 0)
    await w.market.settle(trade)
    assert await w.market.balance(w.buyer) == 2_500
