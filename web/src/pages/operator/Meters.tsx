import type { MarketMeters, ReasonCount } from "../../api";
import { Address } from "../../components/Address";
import { Empty, Status } from "../../components/Status";
import { useApp } from "../../context";
import { duration, time } from "../../format";
import { useLoad } from "../../load";

// Readings refused as they arrived, by reason.
function Rejected(props: { rows: ReasonCount[] }) {
  const { t } = useApp();
  return (
    <table className="counts" data-testid="rejected">
      <caption className="visually-hidden">{t("rejectedTitle")}</caption>
      <thead>
        <tr>
          <th scope="col">{t("reasonColumn")}</th>
          <th scope="col" className="n">
            {t("readingsColumn")}
          </th>
        </tr>
      </thead>
      <tbody>
        {props.rows.map((row) => (
          <tr key={row.reason}>
            <th scope="row">{row.reason}</th>
            <td className="n">{row.readings}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// The market's meters: how many are silent, the most silent ones, and the readings refused.
export function OperatorMeters() {
  const { t, lang } = useApp();
  const [meters, reload] = useLoad<MarketMeters>("/api/v1/operator/meters");
  return (
    <section aria-labelledby="op-meters-title">
      <h1 id="op-meters-title">{t("opMetersTitle")}</h1>
      <Status loaded={meters} retry={reload}>
        {(found) => (
          <>
            <div className="card">
              <dl className="totals">
                <div>
                  <dt>{t("metersSeen")}</dt>
                  <dd data-testid="meters-seen">{found.meters}</dd>
                </div>
                <div>
                  <dt>{t("metersSilent")}</dt>
                  <dd data-testid="meters-silent" className={found.silent > 0 ? "warn" : undefined}>
                    {found.silent}
                  </dd>
                </div>
              </dl>
              <p className="muted">
                {t("silentOver")} {duration(found.silent_after_secs)}
              </p>
            </div>
            <h2>{t("mostSilent")}</h2>
            {found.most_silent.length === 0 ? (
              <div className="card">
                <Empty>{t("noMetersYet")}</Empty>
              </div>
            ) : (
              <ul className="list" data-testid="most-silent">
                {found.most_silent.map((m) => {
                  const silent = m.silent_secs > found.silent_after_secs;
                  return (
                    <li key={m.meter} className="card">
                      <p className="title">
                        <Address of={m.meter} />{" "}
                        <span className={silent ? "warn" : "ok"}>{duration(m.silent_secs)}</span>
                      </p>
                      <p>
                        {t("householdLabel")}: <Address of={m.household} />
                      </p>
                      <p className="muted">
                        {m.has_reading
                          ? `${t("lastReading")}: ${time(m.last_timestamp, lang)}`
                          : t("noReadingYet")}
                      </p>
                    </li>
                  );
                })}
              </ul>
            )}
            <h2>{t("rejectedTitle")}</h2>
            <div className="card">
              {found.rejected.length === 0 ? (
                <Empty>{t("noneRejected")}</Empty>
              ) : (
                <Rejected rows={found.rejected} />
              )}
            </div>
            <h2>{t("chainRefusedTitle")}</h2>
            {found.refused.length === 0 ? (
              <div className="card">
                <Empty>{t("noneChainRefused")}</Empty>
              </div>
            ) : (
              <ul className="list" data-testid="chain-refused">
                {found.refused.map((r) => (
                  <li key={r.reason} className="card">
                    <p className="title">{r.reason}</p>
                    <dl className="totals">
                      <div>
                        <dt>{t("refusedFinal")}</dt>
                        <dd>{r.final}</dd>
                      </div>
                      <div>
                        <dt>{t("refusedWaiting")}</dt>
                        <dd>{r.waiting}</dd>
                      </div>
                      <div>
                        <dt>{t("metersColumn")}</dt>
                        <dd>{r.meters}</dd>
                      </div>
                    </dl>
                  </li>
                ))}
              </ul>
            )}
          </>
        )}
      </Status>
    </section>
  );
}
