// Builds src/index.js (which wires src/plugin.js to the hookgate plugin
// world in wit/) into a WebAssembly component at dist/plugin.wasm.
//
//   npm install        # once (exact versions from package-lock.json: npm ci)
//   npm run build
//
// `node build.mjs DIR` builds another plugin folder (DIR/src/index.js to
// DIR/dist/plugin.wasm) with this folder's toolchain and WIT.
//
// The component embeds the SpiderMonkey JavaScript engine (StarlingMonkey,
// through ComponentizeJS) with the script pre-initialised, so a call starts
// with the module already evaluated. fetch() and incoming-HTTP support are
// left out: plugins have no network.

import { componentize } from "@bytecodealliance/componentize-js";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const dir = process.argv[2] ? resolve(process.argv[2]) : root;
const out = join(dir, "dist", "plugin.wasm");
const started = Date.now();
try {
  const { component } = await componentize({
    sourcePath: join(dir, "src", "index.js"),
    witPath: join(root, "wit"),
    worldName: "plugin",
    disableFeatures: ["http", "fetch-event"],
  });
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, component);
  const mib = (component.length / (1 << 20)).toFixed(1);
  console.log(`built ${out} (${mib} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  console.error(`build failed: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
}
