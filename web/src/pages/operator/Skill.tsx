import type { ForecastSkill } from "../../api";
import { Empty, Status } from "../../components/Status";
import { useApp } from "../../context";
import { duration, energy } from "../../format";
import { useLoad } from "../../load";

// The market's forecast skill per horizon: the forecasts' mean error beside smart persistence's.
export function OperatorSkill() {
  const { t, lang } = useApp();
  const [skill, reload] = useLoad<ForecastSkill>("/api/v1/forecast/skill");
  const wh = (value: number | null) => (value === null ? "—" : energy(Math.round(value), lang));
  return (
    <section aria-labelledby="op-skill-title">
      <h1 id="op-skill-title">{t("skillTitle")}</h1>
      <p>{t("skillIntro")}</p>
      <Status loaded={skill} retry={reload} explain={{ ForecastUnavailable: "forecastsOff" }}>
        {(found) =>
          found.homes === 0 ? (
            <div className="card">
              <Empty>{t("noSkillYet")}</Empty>
            </div>
          ) : (
            <>
              <p>
                {t("homesScored")}: <strong data-testid="homes-scored">{found.homes}</strong>
              </p>
              <ul className="list">
                {found.horizons.map((h) => (
                  <li key={h.horizon_secs} className="card">
                    <p className="title">
                      {t("aheadLabel")} {duration(h.horizon_secs)}
                    </p>
                    <dl className="totals">
                      <div>
                        <dt>{t("skillLabel")}</dt>
                        <dd className={h.skill !== null && h.skill > 0 ? "ok" : "warn"}>
                          {h.skill === null ? "—" : `${Math.round(h.skill * 100)} %`}
                        </dd>
                      </div>
                      <div>
                        <dt>{t("forecastError")}</dt>
                        <dd>{wh(h.mae_wh)}</dd>
                      </div>
                      <div>
                        <dt>{t("persistenceError")}</dt>
                        <dd>{wh(h.reference_mae_wh)}</dd>
                      </div>
                      <div>
                        <dt>{t("stepsScored")}</dt>
                        <dd>{h.steps}</dd>
                      </div>
                    </dl>
                  </li>
                ))}
              </ul>
            </>
          )
        }
      </Status>
    </section>
  );
}
