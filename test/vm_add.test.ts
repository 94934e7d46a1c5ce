// Files and packages reach the guests without SSH (issue #9): `tapsim run --add` puts a
// static TCP echo built here from test/fixtures/echo_tcp.c into both VMs and a folder into
// node 1 only, `--packages jq,bc` adds Debian's jq and GNU bc with the libraries they need;
// the boot commands use all of them and talk over TCP, and what they said is in the trace's
// frames. The trace header records every added file by hash. Bad input: one line, exit 2.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { RecordKind, type GuestFileRecord, type VmAdditionsConfig } from "../engine/trace_records.js";
import { TraceReader } from "../recorder/reader.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";

const dir = mkdtempSync(path.join(tmpdir(), "tsE-add-"));
const home_before = process.env["TAPSIM_HOME"];
const MATRIX_2 = "latency_configs/delays_2x2.txt";
const RUN_TIMEOUT_MS = 600_000;

test.before(() => {
  // The client key pair of these tests, not the user's (set here: uvu loads every test file first).
  process.env["TAPSIM_HOME"] = path.join(dir, "home");
});

test.after(() => {
  if (home_before === undefined) delete process.env["TAPSIM_HOME"];
  else process.env["TAPSIM_HOME"] = home_before;
  rmSync(dir, { recursive: true, force: true });
});

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

function runArgs(port_base: number, ...extra: string[]): string[] {
  return ["run", "--vms", "2", "--latency", MATRIX_2, "--no-ssh", "--no-progress", "--ssh-port-base", String(port_base), "--trace", path.join(dir, `p${port_base}.trace`), ...extra];
}

test("--add and --packages errors: missing host path, relative or '..' guest path, unknown node, unknown package: one line, exit 2", () => {
  const file = path.join(dir, "f.txt");
  writeFileSync(file, "x");
  const cases: [string[], string][] = [
    [["--add", `${dir}/missing:/opt/x`], `tapsim: --add "${dir}/missing:/opt/x": ${dir}/missing: no such file\n`],
    [["--add", `${file}:opt/x`], `tapsim: --add "${file}:opt/x": guest path "opt/x" must be absolute, below /, with no '..'\n`],
    [["--add", `${file}:/opt/../etc/x`], `tapsim: --add "${file}:/opt/../etc/x": guest path "/opt/../etc/x" must be absolute, below /, with no '..'\n`],
    [["--add", `5:${file}:/opt/x`], `tapsim: --add "5:${file}:/opt/x": node 5 does not exist (2 VMs)\n`],
    [["--packages", "no-such-package-tse"], `tapsim: --packages: no package named "no-such-package-tse" (apt-cache has no candidate; run apt-get update?)\n`],
    [["--packages", "Not A Name"], `tapsim: --packages: "Not A Name" is not a Debian package name\n`],
  ];
  for (const [flags, stderr] of cases) {
    const r = tapsim(...runArgs(2640, ...flags));
    assert.is(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
    assert.is(r.stderr, stderr);
  }
});

test("2 VMs, no SSH: a static echo and a folder added, jq and GNU bc from --packages; the exchange is in the trace's frames; every added file recorded by hash", () => {
  const echo = path.join(dir, "echo_tcp");
  const cc = spawnSync("gcc", ["-static", "-Os", "-s", "-o", echo, path.join(REPO_ROOT, "test/fixtures/echo_tcp.c")], { encoding: "utf8" });
  assert.is(cc.status, 0, cc.stderr);
  const data = path.join(dir, "data");
  mkdirSync(path.join(data, "sub"), { recursive: true });
  writeFileSync(path.join(data, "a.txt"), "hi\n");
  chmodSync(path.join(data, "a.txt"), 0o640);
  writeFileSync(path.join(data, "sub/run.sh"), "#!/bin/sh\necho run-ok\n");
  chmodSync(path.join(data, "sub/run.sh"), 0o755);
  symlinkSync("sub/run.sh", path.join(data, "link"));
  // busybox sh runs its own bc applet for a bare `bc`: the package's is /usr/bin/bc.
  const report =
    "modes=$(stat -c %a /srv/data/a.txt /srv/data/sub/run.sh | tr '\\n' ,) link=$(readlink /srv/data/link) run=$(/srv/data/link) " +
    "bc=$(echo 2^64 | /usr/bin/bc) bcv=$(/usr/bin/bc --version | head -1) jq=$(jq -n '\"jq-\\(1+2)\"')";
  const trace = path.join(dir, "p2641.trace");
  const r = tapsimLong(
    ...runArgs(2641, "--duration", "12s", "--add", `${echo}:/opt/tsE/echo_tcp`, "--add", `1:${data}:/srv/data`, "--packages", "jq,bc"),
    "--boot-cmd", "0:/opt/tsE/echo_tcp serve 7000",
    "--boot-cmd", `1:/opt/tsE/echo_tcp send 10.0.0.1 7000 "${report}"`,
  );
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /worst \|virtual clock - deadline\| = 0 ns/);
  const { header, frames } = readTrace(trace);
  const reply = frames.find((f) => f.node === 0 && f.text.includes("echo:modes="));
  assert.ok(reply, `node 0's echo reply is a frame in the trace; frames: ${JSON.stringify(frames.map((f) => f.text.slice(54)))}`);
  const said = reply.text.slice(reply.text.indexOf("echo:"));
  assert.match(said, /^echo:modes=640,755, link=sub\/run\.sh run=run-ok /, "modes and symlinks kept");
  assert.match(said, / bc=18446744073709551616 bcv=bc 1\.07\.1 jq="jq-3"$/, "GNU bc and jq run, with their libraries");
  assert.ok(frames.some((f) => f.node === 1 && f.text.includes("modes=640,755,")), "node 1's request is a frame too");
  const additions = header.config.vm!.additions as VmAdditionsConfig;
  const echo_bytes = readFileSync(echo);
  const byPath = (node: number) => new Map(additions.nodes[node]!.files.map((f): [string, GuestFileRecord] => [f.path, f]));
  for (const node of [0, 1]) {
    assert.equal(byPath(node).get("/opt/tsE/echo_tcp"), { path: "/opt/tsE/echo_tcp", kind: "file", mode: 0o755, bytes: echo_bytes.length, sha256: sha256(echo_bytes) });
    const key_line = readFileSync(path.join(dir, "home/id_ed25519.pub"), "utf8").split(" ").slice(0, 2).join(" ");
    assert.equal(byPath(node).get("/root/.ssh/authorized_keys"), { path: "/root/.ssh/authorized_keys", kind: "file", mode: 0o600, bytes: key_line.length + 1, sha256: sha256(`${key_line}\n`) });
    assert.match(additions.nodes[node]!.archive_sha256, /^[0-9a-f]{64}$/);
  }
  assert.equal(byPath(1).get("/srv/data/a.txt"), { path: "/srv/data/a.txt", kind: "file", mode: 0o640, bytes: 3, sha256: sha256("hi\n") });
  assert.equal(byPath(1).get("/srv/data/link"), { path: "/srv/data/link", kind: "symlink", mode: 0o777, bytes: 10, sha256: sha256("sub/run.sh") });
  assert.is(byPath(0).get("/srv/data/a.txt"), undefined, "N:HOST:GUEST adds to node N only");
  const pkgs = additions.packages!;
  assert.equal(pkgs.requested, ["bc", "jq"]);
  const names = pkgs.resolved.map((p) => p.name);
  for (const want of ["bc", "jq", "libjq1", "libonig5", "libreadline8", "libtinfo6"]) assert.ok(names.includes(want), `${want} resolved (${names.join(" ")})`);
  for (const p of pkgs.resolved) assert.match(p.deb_sha256, /^[0-9a-f]{64}$/, p.name);
  assert.match(pkgs.archive_sha256, /^[0-9a-f]{64}$/);
  assert.is(additions.ssh_password_login, false);
  const replay = tapsim("replay", trace);
  assert.is(replay.code, 0, replay.stdout + replay.stderr);
});

/** A VM run takes longer than the helper's 2 minutes on a loaded host. */
function tapsimLong(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "bin/tapsim.js"), ...args], { cwd: REPO_ROOT, encoding: "utf8", timeout: RUN_TIMEOUT_MS });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function readTrace(trace: string) {
  const reader = TraceReader.open(trace);
  const frames: { node: number; text: string }[] = [];
  for (const r of reader.records()) {
    if (r[0] === RecordKind.FrameEmit) frames.push({ node: r[1], text: Buffer.from(r[4]).toString("latin1") });
  }
  const header = reader.header;
  reader.close();
  return { header, frames };
}

test.run();
