import type { MeterHealth } from "../api";
import { Empty, Status } from "../components/Status";
import { useApp, useHouseholdPath } from "../context";
import { duration, energy, time } from "../format";
import { useLoad } from "../load";

// A meter that sent nothing for this long is called silent.
const SILENT_SECS = 3600;

export function Meter() {
  const { t, lang } = useApp();
  const [meters, reload] = useLoad<{ meters: MeterHealth[] }>(useHouseholdPath("meters"));
  return (
    <section aria-labelledby="meter-title">
      <h1 id="meter-title">{t("meterTitle")}</h1>
      <Status loaded={meters} retry={reload}>
        {(found) =>
          found.meters.length === 0 ? (
            <div className="card">
              <Empty>{t("noMeter")}</Empty>
            </div>
          ) : (
            <ul className="list">
              {found.meters.map((m) => {
                const silent = m.silent_secs === null || m.silent_secs > SILENT_SECS;
                return (
                  <li key={m.meter} className="card">
                    <p className="title">
                      <code>{m.meter.slice(0, 8)}…</code>
                    </p>
                    <p className={silent ? "warn" : "ok"} role="status">
                      {silent ? t("meterSilent") : t("meterOk")}
                    </p>
                    <dl className="totals">
                      <div>
                        <dt>{t("lastReading")}</dt>
                        <dd>{m.last_timestamp === null ? "—" : time(m.last_timestamp, lang)}</dd>
                      </div>
                      <div>
                        <dt>{t("silentFor")}</dt>
                        <dd>{m.silent_secs === null ? "—" : duration(m.silent_secs)}</dd>
                      </div>
                      <div>
                        <dt>{t("exported")}</dt>
                        <dd>{m.last_exported_wh === null ? "—" : energy(m.last_exported_wh, lang)}</dd>
                      </div>
                      <div>
                        <dt>{t("imported")}</dt>
                        <dd>{m.last_imported_wh === null ? "—" : energy(m.last_imported_wh, lang)}</dd>
                      </div>
                      <div>
                        <dt>{t("waiting")}</dt>
                        <dd>{m.unattested}</dd>
                      </div>
                      <div>
                        <dt>{t("refused")}</dt>
                        <dd>{m.refused}</dd>
                      </div>
                    </dl>
                  </li>
                );
              })}
            </ul>
          )
        }
      </Status>
    </section>
  );
}
