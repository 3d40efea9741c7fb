//! `trade_open`: a buyer reserves energy from an offer, pending payment.

use pinocchio::ProgramResult;

use crate::{
    accounts::{self, NewPda},
    args::ArgReader,
    discriminator::Discriminator,
    error::NishatiError,
    events::TradeOpened,
    instruction_discriminator,
    instructions::{now, AccountSpec, Context},
    pda::{self, TRADE_SEED},
    state::{household::Household, market::Market, offer::Offer, trade::Trade, AccountData},
};

pub const DISCRIMINATOR: Discriminator = instruction_discriminator!("trade_open");

pub const ACCOUNTS: &[AccountSpec] = &[
    ("payer", true, true),
    ("authority", false, true),
    ("market", false, false),
    ("offer", true, false),
    ("buyer", false, false),
    ("trade", true, false),
    ("system_program", false, false),
];

/// Args: `wh: u64`, `payment_ref_hash: [u8; 32]`.
pub fn process(ctx: &Context) -> ProgramResult {
    let Context { program_id, accounts, data } = *ctx;
    let [payer, authority, market, offer, buyer, trade, system_program, ..] = accounts else {
        return Err(NishatiError::NotEnoughAccounts.into());
    };
    accounts::signer(payer)?;
    accounts::writable(payer)?;
    accounts::writable(trade)?;
    accounts::system_program(system_program)?;

    let mut args = ArgReader::new(data);
    let wh = args.u64()?;
    let payment_ref_hash = args.pubkey()?;
    args.finish()?;
    let now = now()?;

    let market_state = Market::load(market, program_id)?;
    market_state.check_open()?;
    let buyer_home = Household::read(buyer, program_id, market.key())?;
    buyer_home.check_authority(authority, &market_state)?;
    let deadline = i64::try_from(market_state.payment_deadline_secs)
        .ok()
        .and_then(|secs| now.checked_add(secs))
        .ok_or(NishatiError::ArithmeticOverflow)?;
    drop(market_state);

    let (price, seller) = {
        let mut state = Offer::load_mut(offer, program_id, market.key())?;
        if state.cancelled == 1 {
            return Err(NishatiError::OfferCancelled.into());
        }
        if now > state.expires_at {
            return Err(NishatiError::OfferExpired.into());
        }
        if state.seller == *buyer.key() {
            return Err(NishatiError::SelfTrade.into());
        }
        if wh == 0 {
            return Err(NishatiError::ZeroAmount.into());
        }
        if wh > state.unreserved_wh {
            return Err(NishatiError::NotEnoughOfferedEnergy.into());
        }
        state.unreserved_wh -= wh;
        state.reserved_wh += wh;
        (state.price_cents_per_kwh, state.seller)
    };
    let total_cents = Trade::total_cents(wh, price)?;

    let seeds: [&[u8]; 3] = [TRADE_SEED, offer.key(), &payment_ref_hash];
    let bump = pda::find(&seeds, program_id, trade, NishatiError::InvalidTradeAddress)?;
    NewPda { payer, account: trade, seeds: &seeds, bump }.create(Trade::LEN as u64, program_id)?;

    let mut data = trade.try_borrow_mut_data()?;
    let state = Trade::init_bytes(&mut data)?;
    state.market = *market.key();
    state.offer = *offer.key();
    state.buyer = *buyer.key();
    state.buyer_energy_account = buyer_home.energy_account;
    state.rent_payer = *payer.key();
    state.payment_ref_hash = payment_ref_hash;
    state.wh = wh;
    state.price_cents_per_kwh = price;
    state.total_cents = total_cents;
    state.created_at = now;
    state.deadline = deadline;
    state.bump = bump;

    TradeOpened {
        trade: *trade.key(),
        offer: *offer.key(),
        buyer: *buyer.key(),
        seller,
        wh,
        total_cents,
        deadline,
        payment_ref_hash,
    }
    .emit();
    Ok(())
}
