import type { Installer, MarketSettings } from "../../api";
import { Address } from "../../components/Address";
import { Empty, Status } from "../../components/Status";
import { useApp } from "../../context";
import type { Key } from "../../i18n";
import { duration, energy, kes, power, time } from "../../format";
import { useLoad } from "../../load";

function Settings(props: { market: MarketSettings }) {
  const { t, lang } = useApp();
  const { market } = props;
  const c = market.config;
  const rows: [Key, string][] = [
    ["feeLabel", `${c.fee_bps / 100} %`],
    ["lowestPrice", kes(c.min_price_cents_per_kwh, lang)],
    ["highestPrice", kes(c.max_price_cents_per_kwh, lang)],
    ["paymentDeadline", duration(c.payment_deadline_secs)],
    ["cancelGrace", duration(c.cancel_grace_secs)],
    ["maxExport", power(c.max_export_watts, lang)],
    ["dailyMintCap", energy(c.daily_mint_cap_wh, lang)],
    ["mintedToday", energy(market.minted_today_wh, lang)],
    ["maxOpenTrades", String(c.max_open_trades_per_buyer)],
  ];
  return (
    <div className="card">
      <p className={market.paused ? "warn lead" : "ok lead"} role="status">
        {market.paused ? t("marketPaused") : t("marketOpen")}
      </p>
      <dl className="totals" data-testid="market-settings">
        {rows.map(([label, value]) => (
          <div key={label}>
            <dt>{t(label)}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
      <p className="muted">
        {t("adminLabel")}: <Address of={market.admin} /> · {t("oracleLabel")}: <Address of={c.oracle_authority} />
      </p>
    </div>
  );
}

// The market's settings and its installers, as the chain holds them now.
export function OperatorMarket() {
  const { t, lang } = useApp();
  const [market, reloadMarket] = useLoad<MarketSettings>("/api/v1/operator/market");
  const [installers, reloadInstallers] = useLoad<{ installers: Installer[] }>("/api/v1/operator/installers");
  return (
    <section aria-labelledby="op-market-title">
      <h1 id="op-market-title">{t("opMarketTitle")}</h1>
      <h2>{t("marketSettingsTitle")}</h2>
      <Status loaded={market} retry={reloadMarket}>
        {(found) => <Settings market={found} />}
      </Status>
      <h2>{t("installersTitle")}</h2>
      <Status loaded={installers} retry={reloadInstallers} explain={{ InstallersUnlisted: "installersUnlisted" }}>
        {(found) =>
          found.installers.length === 0 ? (
            <div className="card">
              <Empty>{t("noInstallers")}</Empty>
            </div>
          ) : (
            <ul className="list">
              {found.installers.map((i) => (
                <li key={i.installer} className="card">
                  <p className="title">
                    <Address of={i.installer} />
                  </p>
                  <p className="muted">
                    {t("approvedAt")} {time(i.added_at, lang)}
                  </p>
                </li>
              ))}
            </ul>
          )
        }
      </Status>
    </section>
  );
}
