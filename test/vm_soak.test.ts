// The soak the gate's old race could not survive (issue #8): 3 VMs with SSH sessions open,
// a QMP monitoring client per VM, commands, pings and SFTP copies for 90 s of wall time
// (bench/soak.ts). Every slice must end at exactly its deadline. Before the fix (the gate of
// main at fe6affb), this failed 4 of 4 runs: BENCHMARKS.md, "Soak".

import { test } from "uvu";
import * as assert from "uvu/assert";
import { soak } from "../bench/soak.js";

const LOAD_WALL_S = 90;

test(`soak: 3 VMs, SSH sessions, QMP polling and copies for ${LOAD_WALL_S} s: 0 ns on every slice`, async () => {
  const r = await soak({ vms: 3, wall_s: LOAD_WALL_S, ssh_port_base: 27400 });
  const summary = `${r.gate_slices} slices, worst ${r.gate_error_ns_max} ns, ${r.virtual_s} s virtual; ${JSON.stringify(r.load)}`;
  console.log(`  soak: ${summary}`);
  assert.is(r.failure, null, `${r.failure}\n${r.stderr.slice(-2000)}`);
  assert.is(r.exit_code, 130, r.stderr.slice(-2000));
  assert.is(r.gate_error_ns_max, 0, summary);
  assert.ok(r.gate_slices > 1000, `the run went through many slices (${summary})`);
  assert.ok(r.load.commands > 0 && r.load.copies > 0 && r.load.qmp_queries > 0, `the load ran (${summary})`);
});

test.run();
