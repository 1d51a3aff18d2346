// Runs a WASI preview1 program (a wasm32-wasip1 test binary) under node's `node:wasi`:
//
//     node --no-warnings tests/wasi/run.mjs PROGRAM.wasm [ARGS...]
//
// which is what cargo does with CARGO_TARGET_WASM32_WASIP1_RUNNER set to
// "node --no-warnings $PWD/tests/wasi/run.mjs". The program sees the arguments, the environment
// (DROPMAX_* variables included) and the current directory, preopened under its own path, so
// that paths below it (CARGO_MANIFEST_DIR) resolve; it has no threads (WASI preview1 has
// none). Exits with the program's exit status. Needs node 20 or later.
import { readFile } from "node:fs/promises";
import { argv, cwd, env, exit } from "node:process";
import { WASI } from "node:wasi";

const [program, ...args] = argv.slice(2);
if (!program) {
  console.error("usage: node run.mjs PROGRAM.wasm [ARGS...]");
  exit(2);
}
const dir = cwd();
const wasi = new WASI({
  version: "preview1",
  args: [program, ...args],
  env,
  preopens: { [dir]: dir },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(program));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
