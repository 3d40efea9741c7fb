import type { TradesByState as Trades } from "../../api";
import { Address } from "../../components/Address";
import { Empty, Status } from "../../components/Status";
import { stateLabel, useApp } from "../../context";
import { energy, kes, time } from "../../format";
import { useLoad } from "../../load";

// How many trades are in each state, and the latest of each behind a disclosure.
export function TradesByState() {
  const { t, lang } = useApp();
  const [trades, reload] = useLoad<Trades>("/api/v1/operator/trades?latest=5");
  return (
    <>
      <h2>{t("tradesByState")}</h2>
      <Status loaded={trades} retry={reload}>
        {(found) =>
          found.states.length === 0 ? (
            <div className="card">
              <Empty>{t("noTradesYet")}</Empty>
            </div>
          ) : (
            <ul className="list" data-testid="trades-by-state">
              {found.states.map((s) => (
                <li key={s.state} className="card">
                  <p className="title">
                    <span className="badge">{stateLabel(t, s.state)}</span>{" "}
                    <span data-testid={`state-${s.state}`}>{s.trades}</span>
                  </p>
                  <details>
                    <summary>{t("latestTrades")}</summary>
                    <ul className="plain">
                      {s.latest.map((trade) => (
                        <li key={trade.trade_id}>
                          <Address of={trade.trade_id} /> {energy(trade.wh, lang)} · {kes(trade.total_cents, lang)}
                          <br />
                          <span className="muted">
                            {t("changedLabel")} {time(trade.updated_at, lang)}
                          </span>
                        </li>
                      ))}
                    </ul>
                  </details>
                </li>
              ))}
            </ul>
          )
        }
      </Status>
    </>
  );
}
