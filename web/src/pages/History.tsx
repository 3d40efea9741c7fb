import type { TradeLine } from "../api";
import { Empty, Status } from "../components/Status";
import { stateLabel, useApp, useHouseholdPath } from "../context";
import { energy, kes, time } from "../format";
import { useLoad } from "../load";

export function History() {
  const { t, lang } = useApp();
  const [trades, reload] = useLoad<{ trades: TradeLine[] }>(useHouseholdPath("trades"));
  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">{t("historyTitle")}</h1>
      <Status loaded={trades} retry={reload}>
        {(found) =>
          found.trades.length === 0 ? (
            <div className="card">
              <Empty>{t("noTrades")}</Empty>
            </div>
          ) : (
            <ul className="list">
              {found.trades.map((trade) => (
                <li key={trade.trade_id} className="card">
                  <p className="title">
                    {trade.role === "buyer" ? t("bought") : t("sold")} {energy(trade.wh, lang)} ·{" "}
                    {trade.role === "buyer" ? kes(trade.total_cents, lang) : kes(trade.payout_kes * 100, lang)}
                  </p>
                  <p>
                    <span className="badge">{stateLabel(t, trade.state)}</span> {time(trade.created_at, lang)}
                  </p>
                  {trade.mpesa_receipt !== null && (
                    <p>
                      {t("receipt")}: <code>{trade.mpesa_receipt}</code>
                    </p>
                  )}
                  {trade.payout_receipt !== null && (
                    <p>
                      {t("payoutReceipt")}: <code>{trade.payout_receipt}</code>
                    </p>
                  )}
                  {trade.refund_receipt !== null && (
                    <p>
                      {t("refund")}: <code>{trade.refund_receipt}</code>
                    </p>
                  )}
                </li>
              ))}
            </ul>
          )
        }
      </Status>
    </section>
  );
}
