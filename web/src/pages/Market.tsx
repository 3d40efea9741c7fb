import { useEffect, useState, type SubmitEvent } from "react";
import { ApiError, get, send, type OfferLine, type Payment, type TradeOpened } from "../api";
import { Field } from "../components/Field";
import { Empty, Status } from "../components/Status";
import { stateLabel, useApp, useHouseholdPath } from "../context";
import type { Key } from "../i18n";
import { energy, kes } from "../format";
import { useLoad } from "../load";

// A chain that lists no accounts (an in-process one) cannot show offers.
const UNLISTED = { OffersUnlisted: "offersUnavailable" } as const;

const POLL_MS = 2000;

// A trade's progress from the payment's event stream (GET /api/v1/payments/{id}/events), or,
// where the browser has no EventSource or the stream fails, from the payment asked again
// until it is final. `onFinal` must keep its identity (a load's reload does).
function TradeProgress(props: { tradeId: string; onFinal: () => void }) {
  const { t } = useApp();
  const { tradeId, onFinal } = props;
  const [payment, setPayment] = useState<Payment | null>(null);
  useEffect(() => {
    let timer: number | undefined;
    let events: EventSource | undefined;
    let current = true;
    // True once the trade is final: nothing more is asked.
    const shown = (found: Payment) => {
      setPayment(found);
      if (found.final) onFinal();
      return found.final;
    };
    const poll = async () => {
      try {
        const found = (await get<Payment>(`/api/v1/payments/${tradeId}`)).data;
        if (!current || shown(found)) return;
      } catch {
        // Asked again on the next round.
      }
      if (current) timer = window.setTimeout(() => void poll(), POLL_MS);
    };
    if (typeof EventSource === "undefined") {
      void poll();
    } else {
      const source = new EventSource(`/api/v1/payments/${tradeId}/events`);
      events = source;
      source.addEventListener("payment", (event) => {
        if (current && shown(JSON.parse(event.data as string) as Payment)) source.close();
      });
      source.onerror = () => {
        source.close();
        if (current) void poll();
      };
    }
    return () => {
      current = false;
      events?.close();
      window.clearTimeout(timer);
    };
  }, [tradeId, onFinal]);
  if (payment === null) return <p role="status">{t("stkSent")}</p>;
  const settled = ["settled", "payout_sent", "payout_confirmed"].includes(payment.state);
  const last = payment.history.at(-1);
  return (
    <div className="card" role="status" aria-live="polite">
      <h2>{t("tradeProgress")}</h2>
      <ol className="steps">
        {payment.history.map((step) => (
          <li key={`${step.at}-${step.state}`}>{stateLabel(t, step.state)}</li>
        ))}
      </ol>
      {settled && <p className="ok">{t("tradeSettled")}</p>}
      {payment.final && !settled && (
        <p className="warn">
          {t("tradeCancelled")}
          {last?.detail ? `: ${last.detail}` : ""}
        </p>
      )}
      {!payment.final && !settled && <p>{t("stkSent")}</p>}
    </div>
  );
}

function BuyForm(props: { offer: OfferLine; onOpened: (tradeId: string) => void }) {
  const { t, lang } = useApp();
  const [kwh, setKwh] = useState("0.5");
  const [phone, setPhone] = useState(() => sessionStorage.getItem("nishati.phone") ?? "");
  const [problem, setProblem] = useState<Key | null>(null);
  // One key per order: a second tap (or a resend on a slow line) opens no second trade; a new
  // key once it is answered, for the next order.
  const [orderKey, setOrderKey] = useState(() => crypto.randomUUID());
  const wh = Math.round(Number(kwh) * 1000);
  const totalCents = Math.ceil((wh * props.offer.price_cents_per_kwh) / 1000);
  function buy(event: SubmitEvent) {
    event.preventDefault();
    setProblem(null);
    const order = { offer: props.offer.offer, wh, phone };
    send<TradeOpened>("POST", "/api/v1/trades", order, { "Idempotency-Key": orderKey }).then(
      (opened) => {
        setOrderKey(crypto.randomUUID());
        if (opened !== undefined) props.onOpened(opened.trade_id);
      },
      (error: unknown) => {
        setProblem(error instanceof ApiError && error.reason === "NotYourPhone" ? "notYourPhone" : "errorGeneric");
      },
    );
  }
  const id = props.offer.offer.slice(0, 8);
  return (
    <form className="buy" onSubmit={buy}>
      <Field
        id={`kwh-${id}`}
        label={t("amountLabel")}
        type="number"
        inputMode="decimal"
        min="0.001"
        step="0.001"
        max={props.offer.unreserved_wh / 1000}
        required
        value={kwh}
        onValue={setKwh}
      />
      <Field
        id={`phone-${id}`}
        label={t("buyPhoneLabel")}
        type="tel"
        inputMode="tel"
        required
        value={phone}
        onValue={setPhone}
      />
      <p>
        {t("total")}: {kes(totalCents, lang)}
      </p>
      {problem !== null && <p role="alert">{t(problem)}</p>}
      <button type="submit" disabled={wh <= 0}>
        {t("buy")}
      </button>
    </form>
  );
}

export function Market() {
  const { t, lang } = useApp();
  const offersPath = useHouseholdPath("offers");
  const [offers, reload] = useLoad<{ offers: OfferLine[] }>(offersPath);
  const [tradeId, setTradeId] = useState<string | null>(null);
  return (
    <section aria-labelledby="market-title">
      <h1 id="market-title">{t("marketTitle")}</h1>
      <p>{t("marketIntro")}</p>
      {tradeId !== null && <TradeProgress tradeId={tradeId} onFinal={reload} />}
      <Status loaded={offers} retry={reload} explain={UNLISTED}>
        {(found) => {
          const open = found.offers.filter((o) => !o.own && o.unreserved_wh > 0);
          return open.length === 0 ? (
            <div className="card">
              <Empty>{t("noOffers")}</Empty>
            </div>
          ) : (
            <ul className="list">
              {open.map((offer) => (
                <li key={offer.offer} className="card">
                  <p className="title">
                    {t("offerAvailable")}: {energy(offer.unreserved_wh, lang)}
                  </p>
                  <p>
                    {t("price")}: {kes(offer.price_cents_per_kwh, lang)} {t("perKwh")}
                  </p>
                  <BuyForm offer={offer} onOpened={setTradeId} />
                </li>
              ))}
            </ul>
          );
        }}
      </Status>
    </section>
  );
}
