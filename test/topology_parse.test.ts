import { test } from "uvu";
import * as assert from "uvu/assert";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "../engine/errors.js";
import { Topology, type TopologySpec } from "../engine/topology.js";
import { loadTopologyFile, parseLatencyMatrix, parseTopologyYaml } from "../engine/topology_parse.js";
import { type NodeId } from "../engine/units.js";

// Compiled to dist/test/, so the repository root is two levels up.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const configs = path.join(root, "latency_configs");
const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-topology-"));
let fileNo = 0;

/** Writes `text` to a fresh temp file with extension `ext`; returns its path. */
function write(text: string, ext = ".txt"): string {
  const file = path.join(tmp, `t${fileNo++}${ext}`);
  writeFileSync(file, text);
  return file;
}

/** Asserts fn throws an InputError of one line "file:line:col: …" containing `fragment`. */
function failsAt(fn: () => unknown, file: string, line: number, col: number, fragment: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.instance(caught, InputError, `expected an InputError containing "${fragment}"`);
  const message = (caught as Error).message;
  assert.not.match(message, /\n/, "one line");
  assert.ok(message.startsWith(`${file}:${line}:${col}: `), `expected ${file}:${line}:${col}, got: ${message}`);
  assert.ok(message.includes(fragment), `expected "${fragment}" in: ${message}`);
}

/** Asserts fn throws a one-line InputError containing every fragment. */
function failsWith(fn: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.instance(caught, InputError);
  const message = (caught as Error).message;
  assert.not.match(message, /\n/, "one line");
  for (const f of fragments) assert.ok(message.includes(f), `expected "${f}" in: ${message}`);
}

const ms = (x: number): number => x * 1_000_000;
const link = (t: Topology, to: number, from: number) => t.link(to as NodeId, from as NodeId);

// --- seed matrix format ----------------------------------------------------------------

test("every seed matrix loads with its size and values as written", () => {
  const sizes: Record<string, number> = {
    "delays_1x1.txt": 1, "delays_2x2.txt": 2, "delays_2x2_asym.txt": 2, "delays_3x3.txt": 3, "delays_3x3_mid.txt": 3,
    "delays_3x3_short.txt": 3, "delays_4x4_50ms.txt": 4, "delays_9x9_aws.txt": 9, "latency_3x3_aws.txt": 3,
  };
  const files = readdirSync(configs).filter((f) => f.endsWith(".txt")).sort();
  assert.equal(files, Object.keys(sizes).sort());
  for (const name of files) {
    const file = path.join(configs, name);
    const spec = loadTopologyFile(file);
    const n = sizes[name]!;
    assert.is(spec.source, file);
    assert.is(spec.node_names.length, n, name);
    assert.equal(spec.node_names, Array.from({ length: n }, (_, i) => `n${i}`));
    // Independent reading of the same text: integers in ms.
    const expected = readFileSync(file, "utf8").trim().split("\n").map((l) => l.trim().split(/\s+/).map((x) => ms(Number(x))));
    assert.equal(spec.latency_ns, expected, name);
    assert.equal(spec.link_overrides, []);
    new Topology(spec); // valid for the engine
  }
});

test("seed matrices: specific values", () => {
  const m3 = loadTopologyFile(path.join(configs, "delays_3x3.txt")).latency_ns;
  assert.is(m3[0]![2], 150_000_000);
  assert.is(m3[1]![2], ms(100));
  const aws = loadTopologyFile(path.join(configs, "delays_9x9_aws.txt")).latency_ns;
  assert.is(aws[3]![6], ms(99)); // to 3 from 6
  assert.is(aws[6]![3], ms(49)); // to 6 from 3: asymmetric, read as written
  assert.is(aws[0]![0], ms(1)); // non-zero diagonal kept (unused)
  const m2 = loadTopologyFile(path.join(configs, "delays_2x2.txt")).latency_ns;
  assert.is(m2[0]![1], ms(200)); // to 0 from 1
  assert.is(m2[1]![0], ms(300));
  assert.is(loadTopologyFile(path.join(configs, "delays_1x1.txt")).latency_ns[0]![0], ms(1000));
});

test("seed format: decimals exact, comments, blank lines, CRLF, tabs, trailing newline optional", () => {
  const text = "# one-way ms\n\n0\t0.5  1.000001\r\n0.1 0 2 # a comment\n\n3 4 0\n\n";
  const spec = parseLatencyMatrix(text, "x.txt");
  assert.equal(spec.latency_ns, [[0, 500_000, 1_000_001], [100_000, 0, ms(2)], [ms(3), ms(4), 0]]);
  assert.equal(parseLatencyMatrix("0 1\n1 0", "y.txt").latency_ns, parseLatencyMatrix("0 1\n1 0\n", "y.txt").latency_ns);
  assert.equal(parseLatencyMatrix("\uFEFF0 1\n1 0\n", "bom.txt").latency_ns, [[0, ms(1)], [ms(1), 0]]);
});

test("seed format errors point at the token", () => {
  let f = write("0 10\n10 0 5\n");
  failsAt(() => loadTopologyFile(f), f, 2, 6, "row 2 has 3 entries, expected 2");
  f = write("0 10 20\n10 0\n20 30 0");
  failsAt(() => loadTopologyFile(f), f, 2, 5, "row 2 has 2 entries, expected 3");
  f = write("0 10 20\n10 0 30\n");
  failsAt(() => loadTopologyFile(f), f, 2, 8, "matrix has 2 rows, expected 3");
  f = write("0 1\n1 0\n\n  1 1\n");
  failsAt(() => loadTopologyFile(f), f, 4, 3, "row 3 is one too many");
  f = write("0 -5\n5 0\n");
  failsAt(() => loadTopologyFile(f), f, 1, 3, "negative latency -5");
  f = write("0 5\nNaN 0\n");
  failsAt(() => loadTopologyFile(f), f, 2, 1, 'not a number: "NaN"');
  f = write("# header\n0 5\n5 abc # c\n");
  failsAt(() => loadTopologyFile(f), f, 3, 3, 'not a number: "abc"');
  f = write("0,5\n");
  failsAt(() => loadTopologyFile(f), f, 1, 1, "separate entries with spaces");
  f = write("0\t1e3\n5 0\n");
  failsAt(() => loadTopologyFile(f), f, 1, 3, 'not a number: "1e3"');
  f = write("0 50ms\n50 0\n");
  failsAt(() => loadTopologyFile(f), f, 1, 3, 'unit suffix in "50ms": this format takes plain milliseconds (write 50)');
  f = write("0 5\n0 0\n");
  failsAt(() => loadTopologyFile(f), f, 2, 1, "latency to 1 from 0 is 0: distinct nodes need a positive latency (lookahead)");
  f = write("0 0.0000001\n1 0\n");
  failsAt(() => loadTopologyFile(f), f, 1, 3, "not a whole number of ns");
  f = write("");
  failsAt(() => loadTopologyFile(f), f, 1, 1, "empty latency matrix");
  f = write("# only a comment\n\n   \n");
  failsAt(() => loadTopologyFile(f), f, 1, 1, "empty latency matrix");
});

test("seed format: nodes option must match the matrix", () => {
  const file = path.join(configs, "delays_3x3.txt");
  assert.is(loadTopologyFile(file, { nodes: 3 }).node_names.length, 3);
  failsWith(() => loadTopologyFile(file, { nodes: 4 }), file, "3x3", "4 nodes");
});

test("unreadable files: one line naming the path", () => {
  const missing = path.join(tmp, "nope.txt");
  failsWith(() => loadTopologyFile(missing), `${missing}: cannot read: no such file`);
  failsWith(() => loadTopologyFile(path.join(tmp, "nope.yaml")), "nope.yaml: cannot read: no such file");
  const dir = path.join(tmp, "adir.txt");
  mkdirSync(dir);
  failsWith(() => loadTopologyFile(dir), `${dir}: cannot read: is a directory`);
  const notDir = write("0", ".txt");
  failsWith(() => loadTopologyFile(path.join(notDir, "x.txt")), "cannot read: no such file (a parent of it is not a directory)");
  if (process.getuid?.() !== 0) { // root reads anything
    const secret = write("0 1\n1 0\n");
    chmodSync(secret, 0o000);
    failsWith(() => loadTopologyFile(secret), `${secret}: cannot read: permission denied`);
  }
});

// --- rich format -------------------------------------------------------------------------

const BRIEF_EXAMPLE = `# every field optional
nodes: [a, b, c, d]
defaults:
  latency: 50ms
  jitter: 1ms
  bandwidth: 100Mbit
  loss: 0.1%
  queue: 100
links:
  - {from: 0, to: 1, latency: 20ms, bandwidth: 30Mbit}
  - {between: [a, c], loss: 1%}
  - {from: "*", to: 2, bandwidth: 5Mbit}
`;

test("rich format: defaults, links, between, '*', names and indices", () => {
  const spec = parseTopologyYaml(BRIEF_EXAMPLE, "brief.yaml", tmp);
  assert.is(spec.source, "brief.yaml");
  assert.equal(spec.node_names, ["a", "b", "c", "d"]);
  assert.equal(spec.link_defaults, { jitter_ns: ms(1), bandwidth_bps: 100e6, loss_rate: 0.001, queue_packets_max: 100, queue_bytes_max: 0 });
  assert.is(spec.latency_ns[1]![0], ms(20)); // to b from a
  assert.is(spec.latency_ns[0]![1], ms(50)); // the other direction keeps the default
  assert.is(spec.latency_ns[0]![0], 0);
  // Only fields set per link appear in overrides; latency lives in latency_ns.
  assert.equal(spec.link_overrides, [
    { to: 1, from: 0, bandwidth_bps: 30e6 },
    { to: 2, from: 0, loss_rate: 0.01 },
    { to: 0, from: 2, loss_rate: 0.01 },
    { to: 2, from: 0, bandwidth_bps: 5e6 },
    { to: 2, from: 1, bandwidth_bps: 5e6 },
    { to: 2, from: 3, bandwidth_bps: 5e6 },
  ]);
  const t = new Topology(spec);
  assert.is(link(t, 2, 0).loss_rate, 0.01);
  assert.is(link(t, 2, 0).bandwidth_bps, 5e6);
  assert.is(link(t, 0, 2).bandwidth_bps, 100e6);
  assert.is(link(t, 3, 2).bandwidth_bps, 100e6); // "*" is only the from side
  assert.is(link(t, 1, 0).lookahead_ns, ms(19));
});

test("rich format: precedence defaults < latency_matrix < links, in order", () => {
  writeFileSync(path.join(tmp, "m3.txt"), "0 10 20\n10 0 30\n20 30 0\n");
  const spec = parseTopologyYaml(`latency_matrix: m3.txt
defaults: {latency: 99ms, bandwidth: 1Gbit, queue: 64KiB}
links:
  - {from: 0, to: 1, latency: 5ms, bandwidth: 10Mbit}
  - {from: 0, to: 1, latency: 7ms, queue: 10}
  - {from: "*", to: "*", loss: 0.5}
  - {from: 2, to: 0, loss: 0}
`, "p.yaml", tmp);
  assert.equal(spec.node_names, ["n0", "n1", "n2"]);
  assert.is(spec.latency_ns[1]![0], ms(7)); // last link wins
  assert.is(spec.latency_ns[0]![1], ms(10)); // matrix beats defaults
  assert.is(spec.latency_ns[2]![1], ms(30));
  const t = new Topology(spec);
  assert.is(link(t, 1, 0).bandwidth_bps, 10e6);
  assert.is(link(t, 1, 0).queue_packets_max, 10); // queue replaces both limits
  assert.is(link(t, 1, 0).queue_bytes_max, 0);
  assert.is(link(t, 0, 1).queue_bytes_max, 65536);
  assert.is(link(t, 0, 2).loss_rate, 0);
  assert.is(link(t, 2, 0).loss_rate, 0.5);
  assert.is(link(t, 2, 1).loss_rate, 0.5);
});

test("rich format: between with '*', string indices, queue forms, nodes option", () => {
  const spec = parseTopologyYaml(`nodes: 3
defaults: {latency: 2ms}
links:
  - {between: [1, "*"], jitter: 500us, queue: "20p"}
  - {from: "2", to: "0", queue: 1.5KB}
`, "b.yaml", tmp);
  const t = new Topology(spec);
  for (const [to, from] of [[1, 0], [0, 1], [1, 2], [2, 1]] as const) {
    assert.is(link(t, to, from).jitter_ns, 500_000);
    assert.is(link(t, to, from).queue_packets_max, 20);
  }
  assert.is(link(t, 2, 0).jitter_ns, 0);
  assert.is(link(t, 0, 2).queue_bytes_max, 1500);
  // No nodes in the file: the caller's count is used.
  assert.is(parseTopologyYaml("defaults: {latency: 1ms}\n", "c.yaml", tmp, { nodes: 5 }).node_names.length, 5);
});

test("rich format: JSON is read the same way", () => {
  const f = write(`{"nodes": ["x", "y"], "defaults": {"latency": "3ms", "loss": 0.01},
 "links": [{"from": "x", "to": "y", "bandwidth": "10Mbit"}]}`, ".json");
  const spec = loadTopologyFile(f);
  assert.equal(spec.node_names, ["x", "y"]);
  assert.is(spec.latency_ns[0]![1], ms(3));
  assert.equal(spec.link_overrides, [{ to: 1, from: 0, bandwidth_bps: 10e6 }]);
  const bad = write(`{"nodes": 2,\n "defaults": {"latency": "5mz"}}`, ".json");
  failsAt(() => loadTopologyFile(bad), bad, 2, 26, 'defaults.latency: unknown duration unit "mz"');
});

test("shipped rich files load", () => {
  const wan = loadTopologyFile(path.join(configs, "wan_aws_9.yaml"));
  const aws = loadTopologyFile(path.join(configs, "delays_9x9_aws.txt"));
  assert.equal(wan.latency_ns, aws.latency_ns);
  assert.is(wan.link_defaults.bandwidth_bps, 1e9);
  assert.is(wan.link_defaults.jitter_ns, 200_000);
  new Topology(wan);

  const auction = loadTopologyFile(path.join(configs, "auction_10.yaml"), { nodes: 11 });
  assert.equal(auction.node_names, ["consumer", ...Array.from({ length: 10 }, (_, i) => `p${i}`)]);
  const t = new Topology(auction);
  for (let p = 1; p <= 10; p++) {
    for (const l of [link(t, 0, p), link(t, p, 0)]) { // uplink, downlink
      assert.ok(l.bandwidth_bps >= 5e6 && l.bandwidth_bps <= 50e6, `provider link ${l.to}<-${l.from}`);
      assert.ok(l.latency_ns >= ms(2) && l.latency_ns <= ms(6));
      assert.ok(l.queue_packets_max > 0 || l.queue_bytes_max > 0);
    }
  }
});

// --- rich format errors --------------------------------------------------------------------

/** Writes a YAML file and asserts loading it fails at line:col with `fragment`. */
function yamlFailsAt(text: string, line: number, col: number, fragment: string, opts?: { nodes?: number }): void {
  const f = write(text, ".yaml");
  failsAt(() => loadTopologyFile(f, opts), f, line, col, fragment);
}

test("rich format errors: fields", () => {
  yamlFailsAt("nodes: 2\nlatency_matrx: m.txt\n", 2, 1, 'unknown field "latency_matrx" (did you mean "latency_matrix"?)');
  yamlFailsAt("nodes: 2\nlinsk: []\n", 2, 1, 'unknown field "linsk" (did you mean "links"?)');
  yamlFailsAt("nodes: 2\nfoo: 1\n", 2, 1, 'unknown field "foo" (expected nodes, latency_matrix, defaults, links)');
  yamlFailsAt("nodes: 2\nlatency: 5ms\n", 2, 1, "latency goes under defaults or a link");
  yamlFailsAt("nodes: 2\nlinks:\n  - from: 0\n    to: 1\n    latncy: 5ms\n", 5, 5, 'links[0]: unknown field "latncy" (did you mean "latency"?)');
  yamlFailsAt("nodes: 2\ndefaults:\n  latency: 1ms\n  from: 0\n", 4, 3, 'defaults: unknown field "from" (expected latency, jitter, bandwidth, loss, queue)');
});

test("rich format errors: types", () => {
  yamlFailsAt("nodes: many\n", 1, 8, 'nodes: expected a count or a list of names, got "many"');
  yamlFailsAt("nodes: 0\n", 1, 8, "nodes: a count must be an integer within 1..4096, got 0");
  yamlFailsAt("nodes: 2.5\n", 1, 8, "got 2.5");
  yamlFailsAt("nodes: 2\ndefaults: [1]\n", 2, 11, "defaults: expected a mapping");
  yamlFailsAt("nodes: 2\ndefaults: {latency: 1ms}\nlinks: {from: 0}\n", 3, 8, "links: expected a list of links, got a mapping");
  yamlFailsAt("nodes: 2\ndefaults: {latency: 1ms}\nlinks:\n  - 5\n", 4, 5, "links[0]: expected a mapping");
  yamlFailsAt("nodes: 2\ndefaults: {latency: 1ms, bandwidth: true}\n", 2, 37, "defaults.bandwidth: expected a rate such as 100Mbit, got true");
  yamlFailsAt("nodes: 2\ndefaults: {latency: [1ms]}\n", 2, 21, "defaults.latency: expected a duration such as 50ms, got a list");
  yamlFailsAt("nodes: 2\ndefaults:\n  latency:\n", 3, 11, "defaults.latency: expected a duration such as 50ms, got nothing");
  yamlFailsAt("nodes: [a, 5]\n", 1, 12, "nodes: a node name must be a non-empty string, got 5");
  yamlFailsAt("nodes: [a, '7']\n", 1, 12, 'nodes: "7" cannot be a node name');
  yamlFailsAt("nodes: |\n  a\n  b\n", 1, 8, 'nodes: expected a count or a list of names, got "a\\nb\\n"');
  yamlFailsAt("nodes: 2\ndefaults:\n  latency: |\n    5 m\n    s\n", 3, 12, 'defaults.latency: not a number: "5 m\\ns"');
  yamlFailsAt("nodes: 2\nlatency_matrix: 5\n", 2, 17, "latency_matrix: expected a file name, got 5");
});

test("rich format errors: units, with the value's position", () => {
  yamlFailsAt("nodes: 2\ndefaults:\n  latency: 5mz\n", 3, 12, 'defaults.latency: unknown duration unit "mz" (expected ns, us, ms, s, m, h)');
  yamlFailsAt("nodes: 2\ndefaults:\n  latency: 50\n", 3, 12, 'defaults.latency: missing unit in "50" (write e.g. 50ms)');
  yamlFailsAt("nodes: 2\ndefaults:\n  latency: 0.10\n", 3, 12, 'missing unit in "0.10"');
  yamlFailsAt("nodes: 2\ndefaults:\n  latency: -5ms\n", 3, 12, "defaults.latency: negative value -5ms");
  yamlFailsAt("nodes: 2\ndefaults: {latency: 1ms, bandwidth: 100}\n", 2, 37, 'missing unit in "100" (write e.g. 100Mbit)');
  yamlFailsAt("nodes: 2\ndefaults: {latency: 1ms, loss: 2}\n", 2, 32, "defaults.loss: ratio 2 is above 1");
  yamlFailsAt("nodes: 2\ndefaults: {latency: 1ms, loss: 5x}\n", 2, 32, 'defaults.loss: unknown ratio unit "x"');
  yamlFailsAt("nodes: 2\ndefaults: {latency: 1ms, queue: 64kb}\n", 2, 33, 'defaults.queue: unknown size unit "kb"');
  yamlFailsAt("nodes: 2\nlinks:\n  - {from: 0, to: 1, jitter: abc}\n", 3, 30, 'links[0].jitter: not a number: "abc"');
  yamlFailsAt("nodes: 2\ndefaults: {latency: 0ms}\n", 2, 21, "defaults.latency: must be > 0");
});

test("rich format errors: nodes and links", () => {
  yamlFailsAt("nodes: [a, b]\ndefaults: {latency: 1ms}\nlinks:\n  - {from: a, to: bb, latency: 2ms}\n", 4, 19, 'links[0].to: unknown node "bb" (did you mean "b"?)');
  yamlFailsAt("nodes: [alpha, beta]\ndefaults: {latency: 1ms}\nlinks:\n  - {from: zeta9, to: beta, loss: 1%}\n", 4, 12, 'links[0].from: unknown node "zeta9" (nodes: alpha, beta)');
  yamlFailsAt("nodes: 3\ndefaults: {latency: 1ms}\nlinks:\n  - {from: 3, to: 0, loss: 1%}\n", 4, 12, "links[0].from: node index 3 out of range (3 nodes: 0..2)");
  yamlFailsAt("nodes: 3\ndefaults: {latency: 1ms}\nlinks:\n  - {from: -1, to: 0, loss: 1%}\n", 4, 12, "node index -1 out of range");
  yamlFailsAt("nodes: [a, b]\ndefaults: {latency: 1ms}\nlinks:\n  - {from: a, to: 0, loss: 1%}\n", 4, 19, "links[0]: link from a to itself");
  yamlFailsAt("nodes: [a, b]\ndefaults: {latency: 1ms}\nlinks:\n  - {between: [b, b], loss: 1%}\n", 4, 19, "links[0].between: link from b to itself");
  yamlFailsAt("nodes: [a, b, c]\ndefaults: {latency: 1ms}\nlinks:\n  - {between: [a, b, c], loss: 1%}\n", 4, 15, "links[0].between: expected a list of two nodes, got a list with 3 items");
  yamlFailsAt("nodes: [a, b]\ndefaults: {latency: 1ms}\nlinks:\n  - {between: [a, b], from: a, loss: 1%}\n", 4, 23, "links[0]: use either between or from/to, not both");
  yamlFailsAt("nodes: [a, b]\ndefaults: {latency: 1ms}\nlinks:\n  - {from: a, loss: 1%}\n", 4, 5, "links[0]: a link needs from and to, or between");
  yamlFailsAt("nodes: [a, b]\ndefaults: {latency: 1ms}\nlinks:\n  - {from: a, to: b}\n", 4, 5, "links[0]: sets none of latency, jitter, bandwidth, loss, queue");
  yamlFailsAt("nodes: [a, b, a]\n", 1, 15, 'nodes: duplicate node name "a"');
  yamlFailsAt("nodes: []\n", 1, 8, "nodes: the list of names is empty");
});

test("rich format errors: latency and lookahead", () => {
  yamlFailsAt("nodes: 3\nlinks:\n  - {from: 0, to: 1, latency: 1ms}\n", 1, 8, "no latency for link to n0 from n1: set defaults.latency, latency_matrix or a link's latency");
  yamlFailsAt("defaults: {latency: 1ms}\n", 1, 1, "node count unknown");
  yamlFailsAt("nodes: [a, b]\ndefaults: {latency: 1ms, jitter: 1ms}\n", 2, 34, "jitter 1ms is not below latency 1ms on link to a from b: latency - jitter must stay > 0 (lookahead)");
  yamlFailsAt("nodes: 2\ndefaults: {latency: 5ms}\nlinks:\n  - {from: 0, to: 1, latency: 1ms}\n  - {between: [0, 1], jitter: 2ms}\n", 5, 31, "jitter 2ms is not below latency 1ms on link to n1 from n0");
});

test("rich format errors: latency_matrix", () => {
  writeFileSync(path.join(tmp, "m2.txt"), "0 10\n10 0\n");
  yamlFailsAt("nodes: 3\nlatency_matrix: m2.txt\n", 2, 17, `latency_matrix: ${path.join(tmp, "m2.txt")} is 2x2 but nodes gives 3 nodes`);
  yamlFailsAt("latency_matrix: m2.txt\n", 1, 17, "the file describes 2 nodes but 4 nodes were asked for", { nodes: 4 });
  yamlFailsAt("latency_matrix: gone.txt\n", 1, 17, `latency_matrix: cannot read ${path.join(tmp, "gone.txt")}: no such file`);
  // Errors inside the matrix name the matrix file and its own position.
  const sub = path.join(tmp, "sub");
  mkdirSync(sub);
  writeFileSync(path.join(sub, "bad.txt"), "0 1\n1 x\n");
  const f = write("latency_matrix: sub/bad.txt\n", ".yaml");
  failsAt(() => loadTopologyFile(f), path.join(sub, "bad.txt"), 2, 3, 'not a number: "x"');
});

test("rich format errors: YAML syntax, empty files, wrong root", () => {
  yamlFailsAt("nodes: [a, b\n", 2, 1, "syntax error:");
  yamlFailsAt("nodes: 2\nnodes: 3\n", 2, 1, "syntax error: Map keys must be unique");
  yamlFailsAt("nodes: 2\n  defaults: 1\n", 1, 8, "syntax error: Nested mappings are not allowed");
  yamlFailsAt("nodes: 2\n---\nnodes: 3\n", 2, 1, "syntax error:");
  yamlFailsAt("", 1, 1, "empty topology file");
  yamlFailsAt("# nothing here\n", 1, 1, "empty topology file");
  yamlFailsAt("- 1\n- 2\n", 1, 1, "expected a mapping with fields nodes, latency_matrix, defaults, links, got a list");
  const f = write('{"nodes": 2,', ".json");
  failsWith(() => loadTopologyFile(f), `${f}:1:`, "syntax error:");
});

test("parse functions without files keep the given source name", () => {
  const spec: TopologySpec = parseLatencyMatrix("0 1\n1 0\n", "inline");
  assert.is(spec.source, "inline");
  failsAt(() => parseLatencyMatrix("0 1\n1 x\n", "inline"), "inline", 2, 3, "not a number");
  failsAt(() => parseTopologyYaml("nodes: 2\nbad: 1\n", "mem.yaml", "."), "mem.yaml", 2, 1, 'unknown field "bad"');
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
