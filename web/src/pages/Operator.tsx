import { useState } from "react";
import { send, type AttentionLine } from "../api";
import { Field } from "../components/Field";
import { Empty, Status } from "../components/Status";
import { stateLabel, useApp } from "../context";
import type { Key } from "../i18n";
import { kes } from "../format";
import { useLoad } from "../load";
import { TradesByState } from "./operator/TradesByState";

// A trade waiting for a person: what it is, and handing it back to the worker with a reason.
function NeedsPerson(props: { line: AttentionLine; onActed: () => void }) {
  const { t, lang, principal } = useApp();
  const { line } = props;
  const [reason, setReason] = useState("");
  const [problem, setProblem] = useState<Key | null>(null);
  const operator = principal?.role === "operator" ? principal.username : "operator";
  function retry() {
    setProblem(null);
    send("POST", `/api/v1/operator/trades/${line.trade_id}/retry`, { operator, reason }).then(
      props.onActed,
      () => {
        setProblem("errorGeneric");
      },
    );
  }
  const id = line.trade_id.slice(0, 8);
  return (
    <li className="card">
      <p className="title">
        <code>{id}</code> <span className="badge">{stateLabel(t, line.state)}</span>
      </p>
      <p>
        {t("payout")}: {kes(line.payout_kes * 100, lang)} · {t("paidIn")}: {kes(line.amount_kes * 100, lang)}
      </p>
      {line.detail !== null && <p className="muted">{line.detail}</p>}
      <Field
        id={`reason-${id}`}
        label={t("reasonLabel")}
        value={reason}
        onValue={setReason}
      />
      {problem !== null && <p role="alert">{t(problem)}</p>}
      <button type="button" disabled={reason.trim() === ""} onClick={retry}>
        {t("retryPayout")}
      </button>
    </li>
  );
}

export function Operator() {
  const { t } = useApp();
  const [attention, reload] = useLoad<AttentionLine[]>("/api/v1/operator/attention");
  return (
    <section aria-labelledby="operator-title">
      <h1 id="operator-title">{t("operatorTitle")}</h1>
      <p>{t("operatorIntro")}</p>
      <h2>{t("attentionTitle")}</h2>
      <Status loaded={attention} retry={reload} explain={{ PaymentsDisabled: "paymentsOff" }}>
        {(found) =>
          found.length === 0 ? (
            <div className="card">
              <Empty>{t("noAttention")}</Empty>
            </div>
          ) : (
            <ul className="list" data-testid="attention">
              {found.map((line) => (
                <NeedsPerson key={line.trade_id} line={line} onActed={reload} />
              ))}
            </ul>
          )
        }
      </Status>
      <TradesByState />
    </section>
  );
}
