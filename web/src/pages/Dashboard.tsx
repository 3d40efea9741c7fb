import { useMemo, useState } from "react";
import type { Advice, Balance, Day, Outlook, SolarDay } from "../api";
import { Chart, type Series } from "../components/Chart";
import { Empty, Status } from "../components/Status";
import { useApp, useHouseholdPath } from "../context";
import { energy, kes, time, todayInNairobi } from "../format";
import { useLoad } from "../load";

const EXPORT = { colour: "#15803d", fill: "rgba(21, 128, 61, 0.15)" };
const IMPORT = { colour: "#b45309", fill: "rgba(180, 83, 9, 0.12)" };
const PRODUCTION = { colour: "#ca8a04", fill: "rgba(202, 138, 4, 0.12)" };
const BAND = { colour: "#6b7280", fill: "rgba(107, 114, 128, 0.08)" };

function DayReadings(props: { day: Day }) {
  const { t, lang } = useApp();
  const { day } = props;
  const times = useMemo(() => day.intervals.map((i) => i.end), [day]);
  const series: Series[] = useMemo(
    () => [
      { label: t("exportedShort"), ...EXPORT, values: day.intervals.map((i) => i.exported_wh) },
      { label: t("importedShort"), ...IMPORT, values: day.intervals.map((i) => i.imported_wh) },
    ],
    [day, t],
  );
  const range: [number, number] = useMemo(() => [day.start, day.end], [day]);
  return (
    <div className="card">
      <dl className="totals">
        <div>
          <dt>{t("exported")}</dt>
          <dd className="export" data-testid="day-exported">
            {energy(day.exported_wh, lang)}
          </dd>
        </div>
        <div>
          <dt>{t("imported")}</dt>
          <dd className="import" data-testid="day-imported">
            {energy(day.imported_wh, lang)}
          </dd>
        </div>
      </dl>
      {day.meters.length === 0 ? (
        <Empty>{t("noMeter")}</Empty>
      ) : day.intervals.length === 0 ? (
        <Empty>{t("noReadings")}</Empty>
      ) : (
        <Chart caption={t("chartTitle")} testId="day-chart" times={times} series={series} range={range} />
      )}
    </div>
  );
}

// The day's export as one bar: the part sold to neighbours, the rest to the grid. Sales may
// be of energy exported on earlier days, so the sold part is at most the day's export.
function SolarSplit(props: { solar: SolarDay }) {
  const { t, lang } = useApp();
  const { exported_wh, sold_wh, sold_trades, to_grid_wh } = props.solar;
  if (exported_wh === 0 && sold_wh === 0) return <Empty>{t("solarNone")}</Empty>;
  const soldShare = exported_wh === 0 ? 0 : (Math.min(sold_wh, exported_wh) / exported_wh) * 100;
  const summary = t("solarBar")
    .replace("{exported}", energy(exported_wh, lang))
    .replace("{sold}", energy(sold_wh, lang))
    .replace("{grid}", energy(to_grid_wh, lang));
  return (
    <>
      <div className="split" role="img" aria-label={summary} data-testid="solar-bar">
        <span className="split-sold" style={{ width: `${soldShare}%` }} />
        <span className="split-grid" style={{ width: `${100 - soldShare}%` }} />
      </div>
      <dl className="totals">
        <div>
          <dt>
            <span className="key split-sold" aria-hidden="true" /> {t("solarSold")}
          </dt>
          <dd data-testid="solar-sold">
            {energy(sold_wh, lang)}{" "}
            <span className="muted">
              ({t("solarSales")}: {sold_trades})
            </span>
          </dd>
        </div>
        <div>
          <dt>
            <span className="key split-grid" aria-hidden="true" /> {t("solarToGrid")}
          </dt>
          <dd data-testid="solar-grid">{energy(to_grid_wh, lang)}</dd>
        </div>
        <div>
          <dt>{t("solarExported")}</dt>
          <dd data-testid="solar-exported">{energy(exported_wh, lang)}</dd>
        </div>
      </dl>
      {sold_wh > exported_wh && <p className="muted">{t("solarEarlier")}</p>}
    </>
  );
}

function Forecast(props: { outlook: Outlook }) {
  const { t, lang } = useApp();
  const { steps } = props.outlook;
  const times = useMemo(() => steps.map((s) => s.end), [steps]);
  const series: Series[] = useMemo(
    () => [
      { label: t("production"), ...PRODUCTION, values: steps.map((s) => s.production_wh) },
      { label: t("consumption"), ...IMPORT, values: steps.map((s) => s.consumption_wh) },
      { label: "p10", ...BAND, values: steps.map((s) => s.p10_wh) },
      { label: "p90", ...BAND, values: steps.map((s) => s.p90_wh) },
    ],
    [steps, t],
  );
  const first = steps[0];
  const last = steps.at(-1);
  if (first === undefined || last === undefined) return <Empty>{t("forecastEmpty")}</Empty>;
  const surplus = steps.reduce((sum, s) => sum + s.surplus_wh, 0);
  return (
    <>
      <p>
        {t("surplus")}: <strong>{energy(surplus, lang)}</strong> · {t("madeAt")} {time(props.outlook.made_at, lang)}
      </p>
      <Chart
        caption={t("forecastChart")}
        testId="forecast-chart"
        times={times}
        series={series}
        range={[first.end - 900, last.end]}
      />
    </>
  );
}

function Advised(props: { advice: Advice }) {
  const { t, lang } = useApp();
  const { advice } = props;
  return (
    <>
      <p>{lang === "sw" ? advice.explanation_sw : advice.explanation_en}</p>
      {advice.sell !== null && (
        <p className="ok">
          {t("adviceSell")}: {energy(advice.sell.wh, lang)} · {kes(advice.sell.price_cents_per_kwh, lang)}{" "}
          {t("perKwh")}
        </p>
      )}
      {advice.buy !== null && (
        <p className="warn">
          {t("adviceBuy")}: {energy(advice.buy.shortage_wh, lang)}
        </p>
      )}
    </>
  );
}

export function Dashboard() {
  const { t, lang } = useApp();
  const [day, setDay] = useState(todayInNairobi);
  const [readings, reloadReadings] = useLoad<Day>(useHouseholdPath(`day?date=${day}`));
  const [solar, reloadSolar] = useLoad<SolarDay>(useHouseholdPath(`solar?date=${day}`));
  const [balance, reloadBalance] = useLoad<Balance>(useHouseholdPath("balance"));
  const [outlook, reloadOutlook] = useLoad<Outlook>(useHouseholdPath("forecast"));
  const [advice, reloadAdvice] = useLoad<Advice>(useHouseholdPath("advice"));
  return (
    <section aria-labelledby="dashboard-title">
      <h1 id="dashboard-title">{t("dashboardTitle")}</h1>
      <div className="row">
        <label htmlFor="day">{t("dayLabel")}</label>
        <input
          id="day"
          type="date"
          value={day}
          max={todayInNairobi()}
          onChange={(e) => {
            if (e.target.value) setDay(e.target.value);
          }}
        />
        <button
          type="button"
          className="secondary"
          onClick={() => {
            setDay(todayInNairobi());
          }}
        >
          {t("today")}
        </button>
      </div>
      <Status loaded={readings} retry={reloadReadings}>
        {(found) => <DayReadings day={found} />}
      </Status>
      <h2>{t("solarTitle")}</h2>
      <Status loaded={solar} retry={reloadSolar}>
        {(found) => (
          <div className="card">
            <SolarSplit solar={found} />
            <p className="muted">{t("solarHome")}</p>
          </div>
        )}
      </Status>
      <h2>{t("balanceTitle")}</h2>
      <Status loaded={balance} retry={reloadBalance}>
        {(found) => (
          <dl className="card totals">
            <div>
              <dt>{t("energyHeld")}</dt>
              <dd data-testid="energy-held">{energy(found.energy_wh, lang)}</dd>
            </div>
            <div>
              <dt>{t("earned")}</dt>
              <dd>{kes(found.earned_cents, lang)}</dd>
            </div>
            <div>
              <dt>{t("owed")}</dt>
              <dd>{kes(found.owed_cents, lang)}</dd>
            </div>
            <div>
              <dt>{t("spent")}</dt>
              <dd>{kes(found.spent_cents, lang)}</dd>
            </div>
          </dl>
        )}
      </Status>
      <h2>{t("forecastTitle")}</h2>
      <Status loaded={outlook} retry={reloadOutlook} explain={{ ForecastUnavailable: "forecastEmpty", NoForecastYet: "forecastEmpty" }}>
        {(found) => (
          <div className="card">
            <Forecast outlook={found} />
          </div>
        )}
      </Status>
      <h2>{t("adviceTitle")}</h2>
      <Status loaded={advice} retry={reloadAdvice} explain={{ AdviceUnavailable: "adviceEmpty", NoForecastYet: "adviceEmpty" }}>
        {(found) => (
          <div className="card">
            <Advised advice={found} />
          </div>
        )}
      </Status>
    </section>
  );
}
