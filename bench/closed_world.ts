// Cost of the closed world (issue #9), measured in one process so the ratios are fair on a
// noisy machine: the same 3-VM scenario (boot, then pings between every pair) run
//   - batch: --no-ssh (no management network, no pace): the baseline;
//   - with the management channel live (TAPs, SSH forwards; --pace off);
//   - with the management channel and --pace 1 (the interactive default);
// and `tapsim rerun` of the baseline's trace. Wall times include boot.
//
//   node dist/bench/closed_world.js [quick]

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { note, printTable, QUICK } from "./common.js";

const fmtRatio = (x: number) => x.toFixed(2);

const BIN = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../bin/tapsim.js");
const DURATION = QUICK ? "10s" : "30s";
const BOOT_CMD = "sleep 1; for ip in 10.0.0.1 10.0.0.2 10.0.0.3; do ping -c 5 -i 0.5 $ip; done";

function timed(args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  const wall_s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`tapsim ${args.join(" ")}: exit ${r.status}\n${r.stderr}`);
  return wall_s;
}

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-bench-cw-"));
try {
  const common = ["run", "--vms", "3", "--latency", "latency_configs/delays_3x3.txt", "--duration", DURATION, "--boot-cmd", BOOT_CMD, "--no-progress"];
  const base_trace = path.join(dir, "batch.trace");
  const batch_s = timed([...common, "--no-ssh", "--trace", base_trace]);
  const rerun_s = timed(["rerun", base_trace]);
  const mgmt_s = timed([...common, "--pace", "off", "--ssh-port-base", "27600", "--mgmt-net", "10.249", "--trace", path.join(dir, "mgmt.trace")]);
  const paced_s = timed([...common, "--ssh-port-base", "27700", "--mgmt-net", "10.248", "--trace", path.join(dir, "paced.trace")]);
  note(`3 VMs, ${DURATION} of virtual time (boot included), pings between every pair`);
  printTable(
    ["case", "wall s", "vs batch"],
    [
      ["batch (--no-ssh): baseline", batch_s.toFixed(1), "1.00"],
      ["rerun of the batch trace", rerun_s.toFixed(1), fmtRatio(rerun_s / batch_s)],
      ["management channel live, --pace off", mgmt_s.toFixed(1), fmtRatio(mgmt_s / batch_s)],
      ["management channel live, --pace 1", paced_s.toFixed(1), fmtRatio(paced_s / batch_s)],
    ],
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
