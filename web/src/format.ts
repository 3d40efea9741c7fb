// Numbers as people read them: energy from Wh, money from KES cents (integers throughout).
import type { Lang } from "./i18n";

const LOCALES: Record<Lang, string> = { en: "en-KE", sw: "sw-KE" };

export function energy(wh: number, lang: Lang): string {
  const format = new Intl.NumberFormat(LOCALES[lang], { maximumFractionDigits: 2 });
  return Math.abs(wh) >= 1000 ? `${format.format(wh / 1000)} kWh` : `${format.format(wh)} Wh`;
}

export function kes(cents: number, lang: Lang): string {
  const format = new Intl.NumberFormat(LOCALES[lang], { minimumFractionDigits: 2 });
  return `KES ${format.format(cents / 100)}`;
}

export function time(unixSecs: number, lang: Lang): string {
  return new Date(unixSecs * 1000).toLocaleString(LOCALES[lang], {
    timeZone: "Africa/Nairobi",
    dateStyle: "medium",
    timeStyle: "short",
  });
}

export function duration(secs: number): string {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h`;
  return `${Math.floor(secs / 86400)} d`;
}

// Today in Nairobi, as YYYY-MM-DD (the day the dashboard opens on).
export function todayInNairobi(): string {
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Africa/Nairobi" }).format(new Date());
}

export function power(watts: number, lang: Lang): string {
  const format = new Intl.NumberFormat(LOCALES[lang], { maximumFractionDigits: 2 });
  return Math.abs(watts) >= 1000 ? `${format.format(watts / 1000)} kW` : `${format.format(watts)} W`;
}
