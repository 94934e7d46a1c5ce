// Runs every compiled uvu test (dist/test/**/*.test.js), streams uvu's output, and ends
// with the plain closing line "tests: N passed, N failed, N skipped" that CI reads.
// Usage: node test/run.mjs [filter-regex]
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const filter = process.argv[2] ?? ".";
const pattern = `(?:${filter}).*\\.test\\.js$`;
const child = spawn(process.execPath, [path.join(root, "node_modules/uvu/bin.js"), "dist/test", pattern], {
  cwd: root,
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, FORCE_COLOR: "0" },
});
let out = "";
child.stdout.on("data", (chunk) => {
  out += chunk;
  process.stdout.write(chunk);
});
child.on("close", (code, signal) => {
  const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const failed = Math.max(0, total - passed - skipped);
  const ok = code === 0 && total > 0 && failed === 0;
  console.log(`tests: ${passed} passed, ${ok ? failed : Math.max(failed, 1)} failed, ${skipped} skipped`);
  process.exit(ok ? 0 : code || 1);
});
