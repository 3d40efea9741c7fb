import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The oracle serves dist/ under / (NISHATI_HTTP_WEB_DIR); `vite` alone proxies the API to a
// local oracle.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    target: "es2020",
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8080" },
  },
});
