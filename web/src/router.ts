// The app's routes, in the browser's history: the oracle answers index.html for each of them.
import { useEffect, useState } from "react";

const NAVIGATED = "nishati:navigate";

export function navigate(path: string): void {
  if (path === window.location.pathname) return;
  window.history.pushState(null, "", path);
  window.dispatchEvent(new Event(NAVIGATED));
}

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const changed = () => {
      setPath(window.location.pathname);
    };
    window.addEventListener("popstate", changed);
    window.addEventListener(NAVIGATED, changed);
    return () => {
      window.removeEventListener("popstate", changed);
      window.removeEventListener(NAVIGATED, changed);
    };
  }, []);
  return path;
}
