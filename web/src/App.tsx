import { useCallback, useEffect, useMemo, useState, type MouseEvent, type ReactNode } from "react";
import { DATA_CACHE, get, send, type Principal } from "./api";
import { AppContext, type AppState } from "./context";
import { LANGS, storeLang, storedLang, translator, type Key, type Lang } from "./i18n";
import { Dashboard } from "./pages/Dashboard";
import { History } from "./pages/History";
import { Market } from "./pages/Market";
import { Meter } from "./pages/Meter";
import { Operator } from "./pages/Operator";
import { OperatorMarket } from "./pages/operator/Market";
import { OperatorMeters } from "./pages/operator/Meters";
import { OperatorSkill } from "./pages/operator/Skill";
import { Sell } from "./pages/Sell";
import { SignIn } from "./pages/SignIn";
import { navigate, usePath } from "./router";

const HOUSEHOLD_PAGES: { path: string; label: Key; page: () => ReactNode }[] = [
  { path: "/", label: "navDashboard", page: Dashboard },
  { path: "/market", label: "navMarket", page: Market },
  { path: "/sell", label: "navSell", page: Sell },
  { path: "/history", label: "navHistory", page: History },
  { path: "/meter", label: "navMeter", page: Meter },
];
const OPERATOR_PAGES: typeof HOUSEHOLD_PAGES = [
  { path: "/operator", label: "navOperator", page: Operator },
  { path: "/operator/meters", label: "navOpMeters", page: OperatorMeters },
  { path: "/operator/market", label: "navOpMarket", page: OperatorMarket },
  { path: "/operator/forecast", label: "navOpForecast", page: OperatorSkill },
];
const SIGN_IN = "/signin";

function Link(props: { to: string; current: boolean; children: ReactNode }) {
  const follow = (event: MouseEvent) => {
    event.preventDefault();
    navigate(props.to);
  };
  return (
    <a href={props.to} onClick={follow} aria-current={props.current ? "page" : undefined}>
      {props.children}
    </a>
  );
}

function LanguageSwitch(props: { lang: Lang; choose: (lang: Lang) => void; label: string }) {
  const names: Record<Lang, string> = { en: "English", sw: "Kiswahili" };
  return (
    <label className="lang">
      <span className="visually-hidden">{props.label}</span>
      <select
        value={props.lang}
        onChange={(e) => {
          props.choose(e.target.value === "sw" ? "sw" : "en");
        }}
      >
        {LANGS.map((lang) => (
          <option key={lang} value={lang} lang={lang}>
            {names[lang]}
          </option>
        ))}
      </select>
    </label>
  );
}

const PRINCIPAL_KEY = "nishati.principal";

function rememberedPrincipal(): Principal | null {
  try {
    const saved = localStorage.getItem(PRINCIPAL_KEY);
    return saved === null ? null : (JSON.parse(saved) as Principal);
  } catch {
    return null;
  }
}

function remember(principal: Principal | null): void {
  if (principal === null) localStorage.removeItem(PRINCIPAL_KEY);
  else localStorage.setItem(PRINCIPAL_KEY, JSON.stringify(principal));
}

type Session = { status: "checking" } | { status: "known"; principal: Principal | null };

export function App() {
  const [lang, setLang] = useState<Lang>(storedLang);
  // Who signed in last on this phone, shown at once (its pages' data loads beside the check
  // of the session rather than after it: a round trip less on a slow connection).
  const [session, setSession] = useState<Session>(() => {
    const remembered = rememberedPrincipal();
    return remembered === null ? { status: "checking" } : { status: "known", principal: remembered };
  });
  const path = usePath();
  const t = useMemo(() => translator(lang), [lang]);

  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);

  useEffect(() => {
    get<Principal>("/api/v1/auth/me").then(
      (answer) => {
        remember(answer.data);
        setSession({ status: "known", principal: answer.data });
      },
      () => {
        remember(null);
        setSession({ status: "known", principal: null });
      },
    );
  }, []);

  const principal = session.status === "known" ? session.principal : null;
  const pages = principal?.role === "operator" ? OPERATOR_PAGES : HOUSEHOLD_PAGES;
  const home = pages[0]?.path ?? "/";

  useEffect(() => {
    if (session.status !== "known") return;
    if (principal === null && path !== SIGN_IN) navigate(SIGN_IN);
    if (principal !== null && (path === SIGN_IN || (path === "/" && home !== "/"))) navigate(home);
  }, [session.status, principal, path, home]);

  const signedIn = useCallback((found: Principal) => {
    remember(found);
    setSession({ status: "known", principal: found });
  }, []);

  const signOut = () => {
    const forget = () => {
      if ("caches" in window) void caches.delete(DATA_CACHE);
      remember(null);
      setSession({ status: "known", principal: null });
    };
    send("DELETE", "/api/v1/auth/session").then(forget, forget);
  };

  const choose = (chosen: Lang) => {
    storeLang(chosen);
    setLang(chosen);
  };

  const state: AppState = { lang, t, principal, signedIn };
  const page = pages.find((p) => p.path === path);
  let main: ReactNode;
  if (session.status === "checking") {
    main = (
      <p className="muted" role="status">
        {t("loading")}
      </p>
    );
  } else if (principal === null || path === SIGN_IN) {
    main = <SignIn />;
  } else if (page === undefined) {
    main = (
      <section>
        <h1>{t("notFoundTitle")}</h1>
        <Link to={home} current={false}>
          {t("goHome")}
        </Link>
      </section>
    );
  } else {
    main = <page.page />;
  }

  return (
    <AppContext.Provider value={state}>
      <header className="top">
        <span className="brand">{t("appName")}</span>
        <LanguageSwitch lang={lang} choose={choose} label={t("language")} />
        {principal !== null && (
          <button type="button" className="link light" onClick={signOut}>
            {t("signOut")}
          </button>
        )}
      </header>
      {principal !== null && (
        <nav className="tabs" aria-label={t("appName")}>
          {pages.map((p) => (
            <Link key={p.path} to={p.path} current={p.path === path}>
              {t(p.label)}
            </Link>
          ))}
        </nav>
      )}
      <main>{main}</main>
    </AppContext.Provider>
  );
}
