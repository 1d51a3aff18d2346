// Runs a WASI preview1 program (a wasm32-wasip1 test binary) under node's `node:wasi`:
//
//     node --no-warnings --single-threaded tests/wasi/run.mjs PROGRAM.wasm [ARGS...]
//
// which is what cargo does with CARGO_TARGET_WASM32_WASIP1_RUNNER set to
// "node --no-warnings --single-threaded $PWD/tests/wasi/run.mjs". --single-threaded: without it
// node 20 crashed (SIGSEGV) in most runs after tests/mask_bits_limit.rs, which grows the wasm
// memory to 512 MiB, had passed. The program sees the arguments, the environment (DROPMAX_*
// variables included) and the current directory, preopened under its own path, so that paths
// below it (CARGO_MANIFEST_DIR) resolve; it has no threads (WASI preview1 has none). Exits with
// the program's exit status. Needs node 20 or later.
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
