// Builds the UI into the Python package, so `pip install wideevents[serve]` needs no Node.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "../src/wideevents/serve/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
  },
});
