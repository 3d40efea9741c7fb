import { createContext, useContext } from "react";
import type { Principal } from "./api";
import { isKey, type Lang, type Translate } from "./i18n";

export interface AppState {
  lang: Lang;
  t: Translate;
  principal: Principal | null;
  signedIn: (principal: Principal) => void;
}

export const AppContext = createContext<AppState | null>(null);

// The signed-in household's API path for `route` (its pages are only shown to households).
export function useHouseholdPath(route: string): string {
  const { principal } = useApp();
  const household = principal?.role === "household" ? principal.household : "none";
  return `/api/v1/households/${household}/${route}`;
}

export function useApp(): AppState {
  const state = useContext(AppContext);
  if (state === null) throw new Error("useApp outside the app");
  return state;
}

// A trade's state in the reader's language (its machine name if the dictionary lacks it).
export function stateLabel(t: Translate, state: string): string {
  const key = `state_${state}`;
  return isKey(key) ? t(key) : state;
}
