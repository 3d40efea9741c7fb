import { useState, type SubmitEvent } from "react";
import { ApiError, send, type AutoSell, type AutoSellLimits, type OfferLine } from "../api";
import { Field } from "../components/Field";
import { Empty, Status } from "../components/Status";
import { useApp, useHouseholdPath } from "../context";
import { isKey, type Key } from "../i18n";
import { energy, kes, time } from "../format";
import { useLoad } from "../load";

// A chain that lists no accounts (an in-process one) cannot show offers.
const UNLISTED = { OffersUnlisted: "offersUnavailable" } as const;

const DAY_SECS = 86_400;

// Auto-sell's limits as the form edits them: KES, percent, kWh (the API's are cents and Wh).
function formOf(limits: AutoSellLimits | null) {
  return {
    floor: limits === null ? "20" : String(limits.floor_price_cents_per_kwh / 100),
    share: limits === null ? "50" : String(limits.share_percent),
    most: limits === null ? "1" : String(limits.max_wh_per_offer / 1000),
  };
}

// A refusal in the reader's language (its reason's own words when the dictionary has them),
// with the oracle's detail (the rule the value broke).
function refusalText(t: (key: Key) => string, error: unknown): string {
  if (!(error instanceof ApiError)) return t("errorGeneric");
  const said = isKey(error.reason) ? t(error.reason) : t("errorGeneric");
  return error.message ? `${said} (${error.message})` : said;
}

// The household's auto-sell as last loaded, then as each change answered it.
function AutoSellSettings(props: { loaded: AutoSell; path: string }) {
  const { t, lang } = useApp();
  const [current, setCurrent] = useState(props.loaded);
  const [form, setForm] = useState(() => formOf(props.loaded.limits));
  const [said, setSaid] = useState<{ ok: boolean; text: string } | null>(null);
  function save(event: SubmitEvent) {
    event.preventDefault();
    setSaid(null);
    const body: AutoSellLimits = {
      floor_price_cents_per_kwh: Math.round(Number(form.floor) * 100),
      share_percent: Math.round(Number(form.share)),
      max_wh_per_offer: Math.round(Number(form.most) * 1000),
    };
    send<AutoSell>("PUT", props.path, body).then(
      (saved) => {
        if (saved !== undefined) setCurrent(saved);
        setSaid({ ok: true, text: t("autoSellSaved") });
      },
      (error: unknown) => {
        setSaid({ ok: false, text: refusalText(t, error) });
      },
    );
  }
  function stop() {
    setSaid(null);
    send("DELETE", props.path).then(
      () => {
        setCurrent({ ...current, enabled: false, limits: null, open_offer: null });
      },
      (error: unknown) => {
        setSaid({ ok: false, text: refusalText(t, error) });
      },
    );
  }
  const offer = current.open_offer;
  return (
    <form className="card" onSubmit={save} aria-labelledby="auto-sell-title">
      <p className="title" data-testid="auto-sell-state">
        {current.enabled ? t("autoSellOn") : t("autoSellOff")}
      </p>
      <p>{t("autoSellIntro")}</p>
      {offer !== null && (
        <p>
          {t("autoSellOpenOffer")}: {energy(offer.wh, lang)} · {kes(offer.price_cents_per_kwh, lang)} {t("perKwh")}
        </p>
      )}
      <Field
        id="auto-floor"
        label={t("autoSellFloor")}
        type="number"
        inputMode="decimal"
        min="0.01"
        step="0.01"
        required
        value={form.floor}
        onValue={(value) => {
          setForm({ ...form, floor: value });
        }}
      />
      <Field
        id="auto-share"
        label={t("autoSellShare")}
        type="number"
        inputMode="numeric"
        min="0"
        max="100"
        step="1"
        required
        value={form.share}
        onValue={(value) => {
          setForm({ ...form, share: value });
        }}
      />
      <Field
        id="auto-most"
        label={t("autoSellMax")}
        type="number"
        inputMode="decimal"
        min="0.001"
        step="0.001"
        required
        value={form.most}
        onValue={(value) => {
          setForm({ ...form, most: value });
        }}
      />
      {said !== null && (
        <p className={said.ok ? "ok" : "warn"} role={said.ok ? "status" : "alert"}>
          {said.text}
        </p>
      )}
      <div className="row">
        <button type="submit">{t("autoSellSave")}</button>
        {current.enabled && (
          <button type="button" className="secondary" onClick={stop}>
            {t("autoSellStop")}
          </button>
        )}
      </div>
    </form>
  );
}

export function Sell() {
  const { t, lang } = useApp();
  const offersPath = useHouseholdPath("offers");
  const [offers, reload] = useLoad<{ offers: OfferLine[] }>(offersPath);
  const autoSellPath = useHouseholdPath("auto-sell");
  const [autoSell, reloadAutoSell] = useLoad<AutoSell>(autoSellPath);
  const [kwh, setKwh] = useState("1");
  const [price, setPrice] = useState("25");
  const [problem, setProblem] = useState<Key | null>(null);
  function create(event: SubmitEvent) {
    event.preventDefault();
    setProblem(null);
    const body = {
      wh: Math.round(Number(kwh) * 1000),
      price_cents_per_kwh: Math.round(Number(price) * 100),
      expires_in_secs: DAY_SECS,
    };
    send("POST", offersPath, body).then(reload, () => {
      setProblem("errorGeneric");
    });
  }
  function cancel(offer: string) {
    setProblem(null);
    send("DELETE", `${offersPath}/${offer}`).then(reload, () => {
      setProblem("errorGeneric");
    });
  }
  return (
    <section aria-labelledby="sell-title">
      <h1 id="sell-title">{t("sellTitle")}</h1>
      <p>{t("sellIntro")}</p>
      {problem !== null && (
        <p className="card error" role="alert">
          {t(problem)}
        </p>
      )}
      <form className="card" onSubmit={create}>
        <Field
          id="sell-kwh"
          label={t("amountLabel")}
          type="number"
          inputMode="decimal"
          min="0.001"
          step="0.001"
          required
          value={kwh}
          onValue={setKwh}
        />
        <Field
          id="sell-price"
          label={`${t("price")} (KES ${t("perKwh")})`}
          type="number"
          inputMode="decimal"
          min="0.01"
          step="0.01"
          required
          value={price}
          onValue={setPrice}
        />
        <button type="submit">{t("createOffer")}</button>
      </form>
      <h2 id="auto-sell-title">{t("autoSellTitle")}</h2>
      <Status loaded={autoSell} retry={reloadAutoSell}>
        {(found) => <AutoSellSettings loaded={found} path={autoSellPath} />}
      </Status>
      <h2>{t("myOffers")}</h2>
      <Status loaded={offers} retry={reload} explain={UNLISTED}>
        {(found) => {
          const own = found.offers.filter((o) => o.own);
          return own.length === 0 ? (
            <div className="card">
              <Empty>{t("noOwnOffers")}</Empty>
            </div>
          ) : (
            <ul className="list">
              {own.map((offer) => (
                <li key={offer.offer} className="card">
                  <p className="title">
                    {energy(offer.unreserved_wh, lang)} · {kes(offer.price_cents_per_kwh, lang)} {t("perKwh")}
                  </p>
                  <p>
                    {t("expiresLabel")}: {time(offer.expires_at, lang)}
                  </p>
                  <button
                    type="button"
                    className="secondary"
                    onClick={() => {
                      cancel(offer.offer);
                    }}
                  >
                    {t("cancelOffer")}
                  </button>
                </li>
              ))}
            </ul>
          );
        }}
      </Status>
    </section>
  );
}
