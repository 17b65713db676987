import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// Built into console/dist and served by the broker under /console/ (src/console/plugin.ts).
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/console/",
  plugins: [preact({ devToolsEnabled: false, prefreshEnabled: false, reactAliasesEnabled: false })],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Everything in files: the Content-Security-Policy allows no inline script, style or data: module.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
