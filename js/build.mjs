// Bundles src/widget.ts into the anywidget ESM module the Python package serves
// (sam_widget/static/widget.js). CSS lives in src/style.ts and is injected by the
// widget itself, so there is no separate .css file.
//   node build.mjs          one minified build (what `npm run build` does)
//   node build.mjs --watch  rebuild on change, unminified, with an inline source map
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

const watch = process.argv.includes("--watch");
const outfile = fileURLToPath(new URL("../sam_widget/static/widget.js", import.meta.url));

/** @type {import("esbuild").BuildOptions} */
const options = {
  entryPoints: [fileURLToPath(new URL("./src/widget.ts", import.meta.url))],
  outfile,
  bundle: true,
  format: "esm",
  target: "es2020",
  platform: "browser",
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  legalComments: "none",
  logLevel: "info",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
