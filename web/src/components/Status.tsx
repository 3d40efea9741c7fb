import type { ReactNode } from "react";
import { ApiError } from "../api";
import { useApp } from "../context";
import type { Key } from "../i18n";
import type { Loaded } from "../load";

// What a page shows while its data loads, when loading failed, or the data itself.
export function Status<T>(props: {
  loaded: Loaded<T>;
  retry: () => void;
  children: (data: T) => ReactNode;
  // What to say for a refusal's reason, rather than the generic failure.
  explain?: Partial<Record<string, Key>>;
}): ReactNode {
  const { t } = useApp();
  const { loaded } = props;
  if (loaded.status === "loading") {
    return (
      <p className="muted" role="status">
        {t("loading")}
      </p>
    );
  }
  if (loaded.status === "failed") {
    const error = loaded.error;
    const explained = error instanceof ApiError ? props.explain?.[error.reason] : undefined;
    if (explained !== undefined) {
      return (
        <div className="card">
          <Empty>{t(explained)}</Empty>
        </div>
      );
    }
    const signedOut = error instanceof ApiError && error.status === 401;
    return (
      <div className="card error" role="alert">
        <p>{signedOut ? t("notSignedIn") : t("errorGeneric")}</p>
        <button type="button" onClick={props.retry}>
          {t("retry")}
        </button>
      </div>
    );
  }
  return (
    <>
      {loaded.offline && (
        <p className="notice" role="status">
          {t("offlineNotice")}
        </p>
      )}
      {props.children(loaded.data)}
    </>
  );
}

export function Empty(props: { children: ReactNode }): ReactNode {
  return <p className="empty">{props.children}</p>;
}
