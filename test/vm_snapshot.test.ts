// Snapshot starts (issue #12 item 2): the default guest parked once and saved, every VM of a
// run restored from it, each node's identity injected through the gate after the restore.
// Real QEMU, real gate, real frames; the snapshot cache of the builds under test is a
// scratch folder, the CLI runs use the repo's cache (as a user's would).

import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loadTopologyFile } from "../engine/topology_parse.js";
import { RecordKind, type TraceRecord } from "../engine/trace_records.js";
import { ensureDefaultImage } from "../guest/image.js";
import { checkQemu } from "../qmp/launcher.js";
import { ensureSnapshot } from "../qmp/snapshot.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";
import { readAll } from "./helpers/recorder_fixtures.js";
import { leftovers, runResources, startRun, stopRun } from "./helpers/vm.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-snap-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const MATRIX = "latency_configs/delays_3x3.txt";
const topology = loadTopologyFile(path.join(REPO_ROOT, MATRIX), {});
const latencyMs = (to: number, from: number) => topology.latency_ns[to]![from]! / 1e6;
const MIB = 256;

function exec(port_base: number, node: number, command: string) {
  return tapsim("exec", "--ssh-port-base", String(port_base), "--node", String(node), "--", command);
}

const consoleOf = (rs: TraceRecord[], node: number) => rs.filter((r) => r[0] === RecordKind.GuestOutput && r[1] === node).map((r) => r[3] as string).join("");

test("a snapshot is built once, reused, rebuilt when its RAM or state is damaged (to the same state), and never used for another image", async () => {
  const image = await ensureDefaultImage();
  const qemu_version = await checkQemu();
  const cache_root = path.join(dir, "cache");
  const first = await ensureSnapshot(image, MIB, { cache_root, qemu_version });
  assert.ok(first.built);
  assert.ok(first.snapshot.park_clock_ns > 0, "parked after the template booted");
  const again = await ensureSnapshot(image, MIB, { cache_root, qemu_version });
  assert.not.ok(again.built, "reused from the cache");
  assert.is(again.snapshot.dir, first.snapshot.dir);

  // Written RAM (a later mtime, other bytes) is caught by its hash, and rebuilt.
  const fd = openSync(first.snapshot.ram_path, "r+");
  writeSync(fd, Buffer.from("scribble"), 0, 8, 4096);
  closeSync(fd);
  const rewritten = await ensureSnapshot(image, MIB, { cache_root, qemu_version });
  assert.ok(rewritten.built, "a written RAM file is never used");
  truncateSync(first.snapshot.state_path, 1000);
  const repaired = await ensureSnapshot(image, MIB, { cache_root, qemu_version });
  assert.ok(repaired.built, "a damaged state file is never used");
  // The template boots through the gate in fixed slices and parks at an exact clock: the
  // same image gives the same saved state, so a rerun elsewhere finds the recorded one.
  assert.is(repaired.snapshot.state_sha256, first.snapshot.state_sha256);
  assert.is(repaired.snapshot.park_clock_ns, first.snapshot.park_clock_ns);

  const manifest = JSON.parse(readFileSync(path.join(first.snapshot.dir, "snapshot.json"), "utf8")) as { image_identity: string };
  assert.is(manifest.image_identity, image.identity);
  // The image changed (rebuilt): its own snapshot, and the old one, unusable now, is gone.
  const changed = { ...image, identity: "0".repeat(64) };
  const other = await ensureSnapshot(changed, MIB, { cache_root, qemu_version });
  assert.ok(other.built, "a changed image gets its own snapshot");
  assert.is.not(other.snapshot.dir, first.snapshot.dir);
  assert.not.ok(existsSync(first.snapshot.dir), "the stale snapshot was removed");
});

test("3 VMs from a snapshot: RTTs equal the matrix, each guest its own identity and files, two runs identical", () => {
  // 200 kB in the extra archive: ~140 identity chunks, so the chunked path is exercised.
  const blob = path.join(dir, "blob");
  writeFileSync(blob, Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7919 + (i >> 8)) & 0xff)));
  const blob_sha = createHash("sha256").update(readFileSync(blob)).digest("hex");
  const boot = "sha256sum /root/blob; cat /proc/sys/kernel/random/boot_id; head -c 8 /dev/urandom | od -An -tx1; hostname; ip -4 addr show eth1 | grep -o 'inet [0-9./]*'; sleep 1; ping -c 4 -i 0.3 10.0.0.$(( ($(hostname | tr -dc 0-9) + 1) % 3 + 1 ))";
  const traces = ["a", "b"].map((n) => path.join(dir, `snap-${n}.trace`));
  for (const trace of traces) {
    const r = tapsim("run", "--vms", "3", "--snapshot", "--latency", MATRIX, "--duration", "4s", "--no-ssh", "--no-progress", "--add", `${blob}:/root/blob`, "--boot-cmd", boot, "--trace", trace);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, /starting from snapshots 3 VMs/);
  }
  const diff = tapsim("diff", traces[0]!, traces[1]!);
  assert.is(diff.code, 0, diff.stdout + diff.stderr);
  assert.match(diff.stdout, /identical event by event/);

  const { header, records } = readAll(traces[0]!);
  assert.is(header.config.vm!.snapshots?.length, 1, "the trace names the snapshot");
  const boot_ids = new Set<string>();
  const randoms = new Set<string>();
  for (let node = 0; node < 3; node++) {
    const text = consoleOf(records, node);
    assert.match(text, new RegExp(`tapsim-guest: ready node=${node} ip=10.0.0.${node + 1} hostname=n${node} `));
    boot_ids.add(/\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\r?$/m.exec(text)?.[1] ?? "none");
    randoms.add(/^((?: [0-9a-f]{2}){8})\r?$/m.exec(text)?.[1] ?? "none");
    assert.match(text, new RegExp(`inet 10\\.0\\.0\\.${node + 1}/16`));
    assert.ok(text.includes(`${blob_sha}  /root/blob`), `node ${node}: the added file arrived whole`);
    const peer = (node + 1) % 3;
    const rtts = [...text.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1])).slice(1);
    assert.is(rtts.length, 3, text);
    const expected_ms = latencyMs(peer, node) + latencyMs(node, peer);
    for (const rtt of rtts) assert.ok(rtt >= expected_ms && rtt < expected_ms + 1, `node ${node} -> ${peer}: ${rtt} ms, matrix ${expected_ms} ms`);
  }
  assert.is(boot_ids.size, 3, `boot_ids: ${[...boot_ids].join(" ")}`);
  assert.not.ok(boot_ids.has("none"));
  assert.is(randoms.size, 3, `random reads: ${[...randoms].join(" / ")}`);
});

test("from a snapshot with SSH on and --parallel: READY, tapsim exec reaches each node, rerun re-executes it", async () => {
  const trace = path.join(dir, "snap-ssh.trace");
  const port_base = 26310;
  const run = startRun(["run", "--vms", "3", "--snapshot", "--parallel", "--latency", MATRIX, "--trace", trace, "--ssh-port-base", String(port_base), "--mgmt-net", "10.249", "--no-progress"]);
  try {
    await run.waitFor(/^READY /m, 120_000);
    await run.waitFor(/run dir \S+; QEMU pids [\d ]+;/, 10_000);
    const resources = runResources(run.stderr());
    for (let node = 0; node < 3; node++) {
      const r = exec(port_base, node, "hostname; cat /proc/sys/kernel/random/boot_id");
      assert.is(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^n${node}\\n[0-9a-f-]{36}\\n$`));
    }
    run.child.kill("SIGINT");
    assert.is((await run.done).code, 130, run.stderr());
    assert.equal(leftovers(resources), []);
  } finally {
    await stopRun(run);
  }
  const rerun = tapsim("rerun", trace);
  assert.is(rerun.code, 0, rerun.stdout + rerun.stderr);
  assert.match(rerun.stdout, /^rerun: identical: \d+ records/);
});

test.run();
