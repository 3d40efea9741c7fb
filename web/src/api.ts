// The oracle's API, as the app uses it: JSON in and out, the session cookie sent by the
// browser, the CSRF token (cookie nishati_csrf) sent back on every change.

export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, detail: string) {
    super(detail);
    this.status = status;
    this.reason = reason;
  }
}

export interface Answer<T> {
  data: T;
  // Served by the service worker from its cache: the network is away.
  offline: boolean;
}

const CSRF_COOKIE = "nishati_csrf";
const OFFLINE_HEADER = "X-Nishati-Offline";

function csrfToken(): string | undefined {
  for (const part of document.cookie.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return undefined;
}

function refused(status: number, body: unknown): ApiError {
  const { reason, detail } = body as { reason?: string; detail?: string };
  return new ApiError(status, reason ?? "Unknown", detail ?? "");
}

async function refusal(response: Response): Promise<ApiError> {
  try {
    return refused(response.status, await response.json());
  } catch {
    return new ApiError(response.status, "Unknown", response.statusText);
  }
}

// The answers the oracle sent with the page (its first calls, asked for the signed-in household
// as the page was served: see the oracle's http/webapp.py), each taken once instead of asking,
// and kept in the service worker's data cache as an answer it fetched would be.
const PRELOAD_ID = "nishati-preload";
// The service worker's (public/sw.js) cache of the API's answers.
export const DATA_CACHE = "nishati-data-v1";

type Preloaded = Record<string, { status: number; body: unknown } | undefined>;

function readPreload(): Preloaded {
  const element = document.getElementById(PRELOAD_ID);
  if (element?.textContent == null) return {};
  element.remove();
  return (JSON.parse(element.textContent) as { answers: Preloaded }).answers;
}

const preloaded = readPreload();

function takePreloaded<T>(path: string): Answer<T> | undefined {
  const answer = preloaded[path];
  if (answer === undefined) return undefined;
  preloaded[path] = undefined;
  if (answer.status >= 400) throw refused(answer.status, answer.body);
  if ("caches" in window) {
    const kept = new Response(JSON.stringify(answer.body), { headers: { "Content-Type": "application/json" } });
    void caches.open(DATA_CACHE).then((cache) => cache.put(path, kept));
  }
  return { data: answer.body as T, offline: false };
}

export async function get<T>(path: string): Promise<Answer<T>> {
  const ready = takePreloaded<T>(path);
  if (ready !== undefined) return ready;
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw await refusal(response);
  return { data: (await response.json()) as T, offline: response.headers.has(OFFLINE_HEADER) };
}

export async function send<T>(
  method: "POST" | "PUT" | "DELETE",
  path: string,
  body?: unknown,
  extra: Record<string, string> = {},
): Promise<T | undefined> {
  const headers: Record<string, string> = { Accept: "application/json", ...extra };
  const token = csrfToken();
  if (token !== undefined) headers["X-CSRF-Token"] = token;
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await refusal(response);
  if (response.status === 202 || response.status === 204) return undefined;
  return (await response.json()) as T;
}

// What the oracle answers, as the app reads it.

export type Principal =
  | { role: "household"; household: string }
  | { role: "operator"; username: string };

export interface Interval {
  meter: string;
  start: number;
  end: number;
  exported_wh: number;
  imported_wh: number;
}

export interface Day {
  household: string;
  date: string;
  start: number;
  end: number;
  meters: string[];
  exported_wh: number;
  imported_wh: number;
  intervals: Interval[];
}

export interface Balance {
  household: string;
  energy_wh: number;
  spent_cents: number;
  bought_wh: number;
  earned_cents: number;
  owed_cents: number;
  sold_wh: number;
}

export interface TradeLine {
  trade_id: string;
  role: "buyer" | "seller";
  state: string;
  offer: string;
  wh: number;
  price_cents_per_kwh: number;
  total_cents: number;
  fee_cents: number;
  payout_kes: number;
  mpesa_receipt: string | null;
  payout_receipt: string | null;
  refund_method: string | null;
  refund_receipt: string | null;
  created_at: number;
  updated_at: number;
}

export interface MeterHealth {
  meter: string;
  last_counter: number | null;
  last_timestamp: number | null;
  silent_secs: number | null;
  last_exported_wh: number | null;
  last_imported_wh: number | null;
  attested_counter: number | null;
  unattested: number;
  refused: number;
}

export interface OfferLine {
  offer: string;
  seller: string;
  own: boolean;
  price_cents_per_kwh: number;
  unreserved_wh: number;
  expires_at: number;
}

export interface TradeOpened {
  trade_id: string;
  state: string;
  wh: number;
  total_cents: number;
  amount_kes: number;
}

export interface Payment {
  trade_id: string;
  state: string;
  final: boolean;
  wh: number;
  total_cents: number;
  mpesa_receipt: string | null;
  history: { at: number; state: string; detail: string | null }[];
}

export interface AttentionLine {
  trade_id: string;
  state: string;
  updated_at: number;
  amount_kes: number;
  payout_kes: number;
  mpesa_receipt: string | null;
  payout_attempts: number;
  detail: string | null;
}

export interface OutlookStep {
  end: number;
  production_wh: number;
  consumption_wh: number;
  surplus_wh: number;
  p10_wh: number;
  p90_wh: number;
}

export interface Outlook {
  household: string;
  made_at: number;
  source: string;
  steps: OutlookStep[];
}

export interface Advice {
  household: string;
  advisor: string;
  sell: { wh: number; price_cents_per_kwh: number; until: number } | null;
  buy: { shortage_wh: number; by: number; offer: string | null; price_cents_per_kwh: number | null } | null;
  explanation_en: string;
  explanation_sw: string;
}

// The operator's pages (/api/v1/operator/..., and the market's forecast skill).

export interface MarketSettings {
  market: string;
  admin: string;
  market_id: number;
  paused: boolean;
  energy_mint: string;
  mint_day: number;
  minted_today_wh: number;
  config: {
    oracle_authority: string;
    fee_bps: number;
    min_price_cents_per_kwh: number;
    max_price_cents_per_kwh: number;
    payment_deadline_secs: number;
    cancel_grace_secs: number;
    max_export_watts: number;
    daily_mint_cap_wh: number;
    max_open_trades_per_buyer: number;
  };
}

export interface Installer {
  installer: string;
  record: string;
  added_at: number;
}

export interface ReasonCount {
  reason: string;
  readings: number;
}

export interface MarketMeters {
  meters: number;
  silent: number;
  silent_after_secs: number;
  most_silent: {
    meter: string;
    household: string;
    has_reading: boolean;
    last_timestamp: number;
    silent_secs: number;
    attested_counter: number | null;
  }[];
  rejected: ReasonCount[];
  refused: { reason: string; final: number; waiting: number; meters: number }[];
}

export interface StateTrade {
  trade_id: string;
  buyer: string;
  seller: string;
  wh: number;
  total_cents: number;
  payout_kes: number;
  created_at: number;
  updated_at: number;
}

export interface TradesByState {
  states: { state: string; trades: number; latest: StateTrade[] }[];
}

export interface ForecastSkill {
  household: string | null;
  homes: number;
  horizons: {
    horizon_secs: number;
    steps: number;
    mae_wh: number | null;
    reference_mae_wh: number | null;
    skill: number | null;
  }[];
}

export interface SolarDay {
  household: string;
  date: string;
  exported_wh: number;
  sold_wh: number;
  sold_trades: number;
  to_grid_wh: number;
}

export interface AutoSellLimits {
  floor_price_cents_per_kwh: number;
  share_percent: number;
  max_wh_per_offer: number;
}

export interface AutoSell {
  household: string;
  enabled: boolean;
  limits: (AutoSellLimits & { set_by: string; updated_at: number }) | null;
  open_offer: { offer: string; wh: number; price_cents_per_kwh: number; expires_at: number; why: string } | null;
}
