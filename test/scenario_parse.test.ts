// Scenario files: what they compile to (commands, until, faults as the engine's plan), and
// one located line, exit 2, for each kind of mistake.

import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { InputError } from "../engine/errors.js";
import { parseScenario, type Scenario } from "../scenario/parse.js";
import { REPO_ROOT, tapsim } from "./helpers/cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-scenario-"));
const DEFAULTS = { memory_mib: 256, rtc_base: "2025-01-01T00:00:00" };
const TOPO = `topology: ${path.join(REPO_ROOT, "latency_configs/delays_3x3.txt")}\n`;
let file_no = 0;

function write(text: string): string {
  const file = path.join(tmp, `s${file_no++}.yaml`);
  writeFileSync(file, text);
  return file;
}

function parse(text: string): Scenario {
  return parseScenario(text, "s.yaml", DEFAULTS);
}

/** The one-line located error, as file:line:col: message. */
function errorOf(text: string): string {
  try {
    parse(text);
  } catch (err) {
    assert.instance(err, InputError);
    const message = (err as Error).message;
    assert.not.match(message, /\n/);
    return message;
  }
  assert.unreachable(`no error for:\n${text}`);
  return "";
}

test("commands: node groups expand to one command per node; after: resolves on the same node, then node.name", () => {
  const s = parse(`${TOPO}commands:
  - {name: srv, node: n0, run: "nc -l -p 5000", at: 500ms, timeout: 10s}
  - {name: cli, nodes: [n1, n2], after: n0.srv, delay: 20ms, run: "echo x", ok_exit: [0, 1]}
  - {name: again, nodes: [n1, n2], after: cli, run: "true"}
`);
  const by_id = new Map(s.run.commands.map((c) => [c.id, c]));
  assert.equal([...by_id.keys()], ["n0.srv", "n1.cli", "n2.cli", "n1.again", "n2.again"]);
  assert.equal(by_id.get("n0.srv"), { id: "n0.srv", node: 0, run: "nc -l -p 5000", at_ns: 500e6, after: null, delay_ns: 0, ok_exit: [0], timeout_ns: 10e9 });
  assert.equal(by_id.get("n2.cli")!.after, "n0.srv");
  assert.is(by_id.get("n2.cli")!.delay_ns, 20e6);
  assert.equal(by_id.get("n2.cli")!.ok_exit, [0, 1]);
  assert.is(by_id.get("n1.again")!.after, "n1.cli", "same-node name first");
  // n0 has no 'cli': no command to wait for there.
  assert.match(errorOf(`${TOPO}commands:\n  - {name: cli, node: n1, run: "true"}\n  - {node: n0, after: cli, run: "true"}\n`), /^s\.yaml:4:23: commands: after: "cli" names no command/);
  assert.is(s.run.until.all_exited, true, "commands and no until: until all exited");
  assert.is(s.until_ns, null);
});

test("nodes as a list: names replace the topology's, per-node files, memory and packages", () => {
  const s = parse(`${TOPO}until: 5s
vm: {memory: 128MiB, packages: [bc]}
nodes:
  - {name: client, memory: 512MiB, packages: [jq, bc]}
  - {name: server, add: ["data:/srv/data"]}
  - {name: third}
`);
  assert.equal(s.topology.node_names, ["client", "server", "third"]);
  assert.equal(s.vm!.node_memory_mib, [512, null, null]);
  assert.equal(s.vm!.node_packages, [["bc", "jq"], null, null]);
  assert.equal(s.vm!.packages, ["bc"]);
  assert.equal(s.vm!.adds, [`1:${path.resolve("data")}:/srv/data`]);
  assert.match(errorOf(`${TOPO}until: 5s
nodes:
  - {name: a}
  - {name: a}
  - {name: b}
`), /^s\.yaml:4:3: nodes: node 1 and node 0 are both named "a"$/);
  assert.match(errorOf(`${TOPO}until: 5s
nodes:
  - {name: a, memory: 12MiB}
  - {name: b}
  - {name: c}
`), /nodes\[0\]\.memory: expected whole MiB within 64MiB\.\.64GiB/);
});

test("until: a duration, all_exited, or a mapping; output patterns compile", () => {
  assert.is(parse(`${TOPO}until: 90s\n`).until_ns, 90e9);
  const u = parse(`${TOPO}commands: [{node: n0, run: "true"}]\nuntil: {duration: 1m, all_exited: true, output: {node: n2, pattern: "^done ([0-9]+)"}}\n`).run.until;
  assert.equal(u, { duration_ns: 60e9, all_exited: true, output: [{ node: 2, pattern: "^done ([0-9]+)" }] });
  assert.match(errorOf(`${TOPO}until: {output: {node: n1, pattern: "(unclosed"}}\n`), /^s\.yaml:2:37: until\.output\.pattern: not a regular expression/);
  assert.match(errorOf(`${TOPO}`), /missing field "until"/);
});

test("faults compile to the engine's plan: partition and heal cut exactly the cross-group links, pause for: adds the resume", () => {
  const s = parse(`${TOPO}until: 60s
faults:
  - {at: 10s, partition: [[n0, n1]]}
  - {at: 5s, link_down: {from: n2, to: n0}}
  - {at: 20s, heal: true}
  - {at: 30s, link: {between: [n0, n1], latency: 100ms, loss: 1%}}
  - {at: 40s, crash: n2}
  - {at: 45s, restart: n2}
  - {at: 50s, pause: [n0, n1], for: 2s}
`);
  const net = s.faults.network;
  assert.equal(net.map((c) => [c.t_ns, c.action]), [[5e9, "link_down"], [10e9, "partition"], [20e9, "heal"], [30e9, "link_change"]]);
  const pairs = (c: (typeof net)[number]) => c.links.map((l) => `${l.to}<-${l.from}`).sort();
  assert.equal(pairs(net[0]!), ["0<-2"]);
  assert.equal(net[0]!.set, { down: true });
  // Groups {n0, n1} and the rest {n2}: the four links between them.
  assert.equal(pairs(net[1]!), ["0<-2", "1<-2", "2<-0", "2<-1"]);
  assert.is(net[1]!.label, "n0,n1");
  // The heal leaves n2 -> n0 down: link_down said so, and no link_up.
  assert.equal(pairs(net[2]!), ["1<-2", "2<-0", "2<-1"]);
  assert.equal(net[2]!.set, { down: false });
  assert.equal(pairs(net[3]!), ["0<-1", "1<-0"]);
  assert.equal(net[3]!.set, { latency_ns: 100e6, loss_rate: 0.01 });
  assert.equal(s.faults.nodes, [
    { t_ns: 40e9, node: 2, action: "poweroff" },
    { t_ns: 45e9, node: 2, action: "restart" },
    { t_ns: 50e9, node: 0, action: "pause" },
    { t_ns: 50e9, node: 1, action: "pause" },
    { t_ns: 52e9, node: 0, action: "resume" },
    { t_ns: 52e9, node: 1, action: "resume" },
  ]);
});

test("the issue's schema errors, each one located line: unknown node, overlapping partitions, time in the past, bad unit", () => {
  const cases: [string, RegExp][] = [
    [`${TOPO}until: 9s\ncommands:\n  - {node: n7, run: "true"}\n`, /^s\.yaml:4:12: commands\[0\]\.node: unknown node "n7" \(nodes: n0, n1, n2\)$/],
    [`${TOPO}until: 9s\nfaults:\n  - {at: 1s, partition: [[n0], [n1]]}\n  - {at: 2s, partition: [[n2]]}\n`, /^s\.yaml:5:14: faults: partition at 2s overlaps the partition before it/],
    [`${TOPO}until: 9s\nfaults:\n  - {at: -3s, crash: n1}\n`, /^s\.yaml:4:10: faults\[0\]\.at: -3s is in the past/],
    [`${TOPO}until: 9s\ncommands:\n  - {node: n0, run: "true", at: 2 fortnights}\n`, /^s\.yaml:4:33: commands\[0\]\.at: unknown duration unit "fortnights"/],
    [`${TOPO}until: 9s\ncommands:\n  - {node: n0, run: "true", at: 2}\n`, /^s\.yaml:4:33: commands\[0\]\.at: 2 needs a unit/],
    [`${TOPO}until: 9s\nfaults:\n  - {at: 12s, crash: n1}\n`, /^s\.yaml:4:10: faults\[0\]\.at: 12s is not before the run ends/],
    [`${TOPO}until: 9s\nfaults:\n  - {at: 1s, restart: n1}\n`, /^s\.yaml:4:23: faults: restart n1 at 1s, but n1 is up then$/],
    [`${TOPO}until: 9s\nfaults:\n  - {at: 1s, heal: true}\n`, /^s\.yaml:4:14: faults: heal at 1s but no partition is in effect then$/],
    [`${TOPO}until: 9s\nfaults:\n  - {at: 1s, link: {between: [n0, n1], latncy: 5ms}}\n`, /^s\.yaml:4:40: faults\.link: unknown field "latncy" \(did you mean "latency"\?\)$/],
    [`${TOPO}until: 9s\ncomands: []\n`, /^s\.yaml:3:1: top level: unknown field "comands" \(did you mean "commands"\?\)$/],
    [`${TOPO}workload: {kind: bracha}\ncommands: [{node: n0, run: "true"}]\n`, /^s\.yaml:3:1: commands: in-process nodes \(workload:\) run no guest programs/],
    [`${TOPO}workload: {kind: bracha}\nfaults:\n  - {at: 1s, crash: n1}\n  - {at: 2s, restart: n1}\n`, /^s\.yaml:5:14: faults: restart needs VM nodes/],
    [`${TOPO}until: 9s\nvm: {image: disk.qcow2, snapshot: true}\n`, /^s\.yaml:3:25: vm\.snapshot needs the default guest/],
    [`${TOPO}until: 9s\nvm: {snapshot: sometimes}\n`, /^s\.yaml:3:\d+: vm\.snapshot: /],
  ];
  for (const [text, want] of cases) assert.match(errorOf(text), want, text);
});

test("the CLI: a bad scenario is one line on stderr, exit 2, and no run directory", () => {
  const file = write(`${TOPO}until: 9s\nfaults:\n  - {at: 1s, partition: [[n0], [n9]]}\n`);
  const out = path.join(tmp, "never");
  const r = tapsim("run", file, "--out", out);
  assert.is(r.code, 2);
  assert.is(r.stderr, `tapsim: ${file}:4:33: faults.partition[1][0]: unknown node "n9" (nodes: n0, n1, n2)\n`);
  assert.not.ok(existsSync(out));
  const flag = tapsim("run", file, "--vms", "3");
  assert.is(flag.code, 2);
  assert.match(flag.stderr, /^tapsim: --vms: the scenario file says this/);
});

test("an in-process scenario runs into its run directory and `tapsim results` reads it back", () => {
  const file = write(`topology: ${path.join(REPO_ROOT, "latency_configs/delays_9x9_aws.txt")}\nworkload: {kind: bracha, messages: 2}\n`);
  const out = path.join(tmp, "run");
  const r = tapsim("run", file, "--out", out);
  assert.is(r.code, 0, r.stderr);
  for (const f of ["trace.tapsim", "scenario.yaml", "results.json", "results.txt", "links.csv"]) assert.ok(existsSync(path.join(out, f)), f);
  const again = tapsim("results", out, "--json");
  assert.is(again.code, 0, again.stderr);
  const results = JSON.parse(again.stdout) as { run: { end_reason: string; node_count: number }; links: unknown[] };
  assert.is(results.run.end_reason, "quiescent");
  assert.is(results.run.node_count, 9);
  assert.is(results.links.length, 72);
  const taken = tapsim("run", file, "--out", out);
  assert.is(taken.code, 2);
  assert.match(taken.stderr, /not empty/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
