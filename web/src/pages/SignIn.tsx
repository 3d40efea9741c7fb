import { useState, type SubmitEvent } from "react";
import { ApiError, send, type Principal } from "../api";
import { Field } from "../components/Field";
import { useApp } from "../context";
import type { Key } from "../i18n";

type Step = { kind: "phone" } | { kind: "code"; phone: string } | { kind: "operator" };

function refusalKey(error: unknown): Key {
  if (error instanceof ApiError && error.status === 429) return "tooManyTries";
  if (error instanceof ApiError && (error.status === 401 || error.status === 422)) return "wrongCode";
  return "errorGeneric";
}

// Phone, then the code the SMS brought (POST /api/v1/auth/code, then /api/v1/auth/session);
// operators sign in with a password (POST /api/v1/auth/operator).
export function SignIn() {
  const { t, signedIn } = useApp();
  const [step, setStep] = useState<Step>({ kind: "phone" });
  const [phone, setPhone] = useState("");
  const [code, setCode] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [problem, setProblem] = useState<Key | null>(null);
  const [busy, setBusy] = useState(false);

  async function attempt(action: () => Promise<void>) {
    setBusy(true);
    setProblem(null);
    try {
      await action();
    } catch (error) {
      setProblem(refusalKey(error));
    } finally {
      setBusy(false);
    }
  }

  function askCode(event: SubmitEvent) {
    event.preventDefault();
    void attempt(async () => {
      await send("POST", "/api/v1/auth/code", { phone });
      sessionStorage.setItem("nishati.phone", phone);
      setStep({ kind: "code", phone });
    });
  }

  function verify(event: SubmitEvent, signingPhone: string) {
    event.preventDefault();
    void attempt(async () => {
      const principal = await send<Principal>("POST", "/api/v1/auth/session", {
        phone: signingPhone,
        code,
      });
      if (principal !== undefined) signedIn(principal);
    });
  }

  function operator(event: SubmitEvent) {
    event.preventDefault();
    void attempt(async () => {
      const principal = await send<Principal>("POST", "/api/v1/auth/operator", {
        username,
        password,
      });
      if (principal !== undefined) signedIn(principal);
    });
  }

  return (
    <section className="narrow" aria-labelledby="sign-in-title">
      <h1 id="sign-in-title">{step.kind === "operator" ? t("operatorSignIn") : t("signInTitle")}</h1>
      {problem !== null && (
        <p className="card error" role="alert">
          {t(problem)}
        </p>
      )}
      {step.kind === "phone" && (
        <form className="card" onSubmit={askCode}>
          <p>{t("signInIntro")}</p>
          <Field
            id="phone"
            label={t("phoneLabel")}
            name="phone"
            type="tel"
            inputMode="tel"
            autoComplete="tel"
            required
            placeholder={t("phoneHint")}
            value={phone}
            onValue={setPhone}
          />
          <button type="submit" disabled={busy}>
            {t("sendCode")}
          </button>
        </form>
      )}
      {step.kind === "code" && (
        <form
          className="card"
          onSubmit={(e) => {
            verify(e, step.phone);
          }}
        >
          <p role="status">{t("codeSent")}</p>
          <Field
            id="code"
            label={t("codeLabel")}
            name="code"
            inputMode="numeric"
            autoComplete="one-time-code"
            pattern="[0-9]*"
            required
            value={code}
            onValue={setCode}
          />
          <button type="submit" disabled={busy}>
            {t("verifyCode")}
          </button>
          <button
            type="button"
            className="link"
            onClick={() => {
              setCode("");
              setStep({ kind: "phone" });
            }}
          >
            {t("changePhone")}
          </button>
        </form>
      )}
      {step.kind === "operator" && (
        <form className="card" onSubmit={operator}>
          <Field
            id="username"
            label={t("usernameLabel")}
            autoComplete="username"
            required
            value={username}
            onValue={setUsername}
          />
          <Field
            id="password"
            label={t("passwordLabel")}
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onValue={setPassword}
          />
          <button type="submit" disabled={busy}>
            {t("verifyCode")}
          </button>
        </form>
      )}
      <button
        type="button"
        className="link"
        onClick={() => {
          setProblem(null);
          setStep(step.kind === "operator" ? { kind: "phone" } : { kind: "operator" });
        }}
      >
        {step.kind === "operator" ? t("householdSignIn") : t("operatorSignIn")}
      </button>
    </section>
  );
}
