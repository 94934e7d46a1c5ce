// tapio-rs's own Rust unit tests (`cargo test`), run from here so that `npm test` and CI run
// them: the TAP ioctl layout, name checks, frame batches through a pipe, fd waits. Offline: the
// bootstrap's release build has fetched every crate already. Every #[test] in src/ must have
// run and passed, so a test that stops compiling in or is filtered out fails here.

import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";

const crate = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../tapio-rs");

/** How many #[test] functions the crate's sources declare. */
function declaredTests(): number {
  const src = path.join(crate, "src");
  return readdirSync(src)
    .filter((f) => f.endsWith(".rs"))
    .reduce((n, f) => n + (readFileSync(path.join(src, f), "utf8").match(/^\s*#\[test\]\s*$/gm)?.length ?? 0), 0);
}

test("cargo test: every unit test of tapio-rs runs and passes", () => {
  const declared = declaredTests();
  assert.ok(declared >= 5, `the crate declares its unit tests (${declared} found)`);
  const run = spawnSync("cargo", ["test", "--offline", "--quiet", "--manifest-path", path.join(crate, "Cargo.toml"), "--lib"], {
    encoding: "utf8",
    timeout: 600_000,
    maxBuffer: 16 << 20,
  });
  assert.is(run.error, undefined, `cargo could not run: ${run.error?.message}`);
  const out = `${run.stdout}\n${run.stderr}`;
  assert.is(run.status, 0, `cargo test failed:\n${out.slice(-4000)}`);
  const result = /test result: ok\. (\d+) passed; (\d+) failed; (\d+) ignored/.exec(out);
  assert.ok(result, `a test result line in cargo's output:\n${out.slice(-2000)}`);
  assert.is(Number(result![1]), declared, "every declared test ran and passed");
  assert.is(Number(result![3]), 0, "none ignored");
});

test.run();
