import { useCallback, useEffect, useState } from "react";
import { ApiError, get } from "./api";

export type Loaded<T> =
  | { status: "loading" }
  | { status: "failed"; error: ApiError | Error }
  | { status: "ready"; data: T; offline: boolean };

const LOADING = { status: "loading" } as const;

// GETs `path`, again whenever it changes or on `reload`; loading until the answer to the
// latest request is in.
export function useLoad<T>(path: string): [Loaded<T>, () => void] {
  const [round, setRound] = useState(0);
  const request = `${path}#${round}`;
  const [result, setResult] = useState<{ request: string; loaded: Loaded<T> } | null>(null);
  useEffect(() => {
    let current = true;
    get<T>(path).then(
      (answer) => {
        if (current) {
          setResult({ request, loaded: { status: "ready", data: answer.data, offline: answer.offline } });
        }
      },
      (error: unknown) => {
        if (current) {
          const failure = error instanceof Error ? error : new Error(String(error));
          setResult({ request, loaded: { status: "failed", error: failure } });
        }
      },
    );
    return () => {
      current = false;
    };
  }, [path, request]);
  const reload = useCallback(() => {
    setRound((r) => r + 1);
  }, []);
  return [result?.request === request ? result.loaded : LOADING, reload];
}
