#!/usr/bin/env node
// The bundled CLI lives in dist/ (built by `npm ci` through the prepare script, or `npm run build`;
// see scripts/build.mjs).
import("../dist/pgprov.mjs").catch((e) => {
  if (e && e.code === "ERR_MODULE_NOT_FOUND" && String(e.message).includes("dist/pgprov.mjs")) {
    console.error("pgprov is not built yet: run `npm run build` (or `npm ci`) in " + new URL("..", import.meta.url).pathname);
    process.exit(1);
  }
  throw e;
});
