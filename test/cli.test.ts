import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { tapsim } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-cli-"));

function oneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.is(r.code, 2, `exit code 2, stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.is(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, /^tapsim: /);
  assert.match(lines[0]!, pattern);
  assert.not.match(r.stderr, /\bat .*\.js:\d+/, "no stack trace");
}

test("run records a trace; info, replay and diff work on it; exit codes follow the result", () => {
  const a = path.join(tmp, "a.trace");
  const b = path.join(tmp, "b.trace");
  const run = tapsim("run", "--latency", "latency_configs/delays_3x3.txt", "--messages", "4", "--trace", a, "--no-progress");
  assert.is(run.code, 0, run.stderr);
  assert.match(run.stdout, /bracha: 36\/36 deliveries/);
  assert.match(run.stdout, /ran to t=\d+\.\d{9}s virtual \(quiescent\)/);
  const info = tapsim("info", a);
  assert.is(info.code, 0);
  assert.match(info.stdout, /status: complete; ended: quiescent/);
  // Per link 0->2: 4 INITIALs of node 0's own messages, plus one ECHO and one READY for each of
  // the 12 broadcasts (3 nodes x 4 messages) = 28 frames, each taking m[2][0] = 150 ms.
  assert.match(info.stdout, /0->2: 28 delivered, latency mean 150ms \[150ms \.\. 150ms\]/);
  const json = JSON.parse(tapsim("info", a, "--json").stdout) as { records: number; nodes: unknown[] };
  assert.is(json.nodes.length, 3);
  const replay = tapsim("replay", a);
  assert.is(replay.code, 0);
  assert.match(replay.stdout, new RegExp(`replay: identical: ${json.records} records`));
  tapsim("run", "--latency", "latency_configs/delays_3x3_mid.txt", "--messages", "4", "--trace", b, "--no-progress");
  const diff = tapsim("diff", a, b);
  assert.is(diff.code, 1);
  assert.match(diff.stdout, /config differs: config\.topology\./);
  assert.match(diff.stdout, /diff: first divergence at record #\d+/);
  assert.match(diff.stdout, /links that differ/);
  const dump = tapsim("dump", a, "--from", "500ms", "--node", "2", "--limit", "5");
  assert.is(dump.code, 0);
  const lines = dump.stdout.trimEnd().split("\n");
  assert.is(lines.length, 5);
  for (const line of lines) {
    const t = Number(/^(\d+\.\d{9})s /.exec(line)?.[1]);
    assert.ok(t >= 0.5, `dump --from 500ms starts there: ${line}`);
    assert.match(line, /(node|to|from)=2\b/);
  }
  const same = tapsim("diff", a, a, "--json");
  assert.is(same.code, 0);
  assert.is((JSON.parse(same.stdout) as { equivalent: boolean }).equivalent, true);
});

test("bad inputs give one line naming the file, line and column or the flag", () => {
  const bad_matrix = path.join(tmp, "bad.txt");
  writeFileSync(bad_matrix, "0 10\n10 x\n");
  oneLineError(tapsim("run", "--latency", bad_matrix, "--trace", path.join(tmp, "x.trace")), new RegExp(`${bad_matrix}:2:4: .*not a number`));
  const bad_yaml = path.join(tmp, "bad.yaml");
  writeFileSync(bad_yaml, "nodes: 3\ndefaults:\n  latncy: 5ms\n");
  oneLineError(tapsim("run", "--latency", bad_yaml), new RegExp(`${bad_yaml}:3:3: .*unknown field "latncy" \\(did you mean "latency"\\?\\)`));
  oneLineError(tapsim("run", "--latency", "latency_configs/delays_3x3.txt", "--nodes", "4"), /delays_3x3\.txt.*3x3.*4 nodes/);
  oneLineError(tapsim("run", "--duration", "5 parsecs"), /--duration "5 parsecs"/);
  oneLineError(tapsim("run", "--latency", path.join(tmp, "missing.txt")), /missing\.txt: cannot read: no such file/);
  const not_written = path.join(tmp, "never.trace");
  oneLineError(tapsim("run", "--latency", "latency_configs/delays_3x3.txt", "--silent", "0,1", "--trace", not_written), /workload\.silent_nodes: 2 silent nodes exceed f = 0/);
  assert.not.ok(existsSync(not_written), "a rejected configuration leaves no trace file behind");
  const text = path.join(tmp, "notes.txt");
  writeFileSync(text, "hello, not a trace\n");
  oneLineError(tapsim("info", text), new RegExp(`${text}: not a tapsim trace \\(bad magic\\)`));
  oneLineError(tapsim("replay", path.join(tmp, "nope.trace")), /nope\.trace: no such file/);
  mkdirSync(path.join(tmp, "dir.trace"));
  oneLineError(tapsim("info", path.join(tmp, "dir.trace")), /dir\.trace: is a directory/);
  const unknown = tapsim("run", "--bogus");
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
});

test("run refuses a trace path it cannot create, with one line", () => {
  oneLineError(tapsim("run", "--trace", path.join(tmp, "no-such-dir", "t.trace")), /no-such-dir\/t\.trace: cannot create trace: ENOENT/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
