// The host side of the guest agent without a VM: the injected frame (addresses, checksums),
// message bounds, and the console parser fed in arbitrary pieces.

import { createHash } from "node:crypto";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { formatMac } from "../engine/net/ethernet.js";
import { AGENT_HOST_MAC, AGENT_MESSAGE_BYTES_MAX, agentFrame, AgentParser, agentPayload, encodeAgentMessage, udpChecksum, type AgentEvent } from "../qmp/agent.js";
import { mgmtMac } from "../qmp/launcher.js";

const to = { mgmt_net: "10.251", node: 3, guest_mac: mgmtMac(3) };

test("agent frame: guest's mgmt MAC, host <net>.i.1 -> <net>.i.2:5999, valid IPv4 and UDP checksums", () => {
  const payload = encodeAgentMessage({ kind: "run", id: "n3.ping", command: "ping -c 1 10.0.0.1" });
  const f = agentFrame(to, payload);
  assert.is(formatMac(f.subarray(0, 6).reduce((a, b) => a * 256 + b, 0)), "52:54:00:ff:00:03");
  assert.is(formatMac(f.subarray(6, 12).reduce((a, b) => a * 256 + b, 0)), AGENT_HOST_MAC);
  assert.equal([...f.subarray(26, 30)], [10, 251, 3, 1]);
  assert.equal([...f.subarray(30, 34)], [10, 251, 3, 2]);
  assert.is((f[36]! << 8) | f[37]!, 5999);
  // A header that includes its checksum sums to 0xffff; so does a datagram with its pseudo-header.
  let ip = 0;
  for (let o = 14; o < 34; o += 2) ip += (f[o]! << 8) | f[o + 1]!;
  while (ip > 0xffff) ip = (ip & 0xffff) + (ip >>> 16);
  assert.is(ip, 0xffff);
  assert.is(udpChecksum(f), (f[40]! << 8) | f[41]!);
  assert.is.not((f[40]! << 8) | f[41]!, 0);
  assert.is(Buffer.from(agentPayload(f)).toString(), "run n3.ping\nping -c 1 10.0.0.1");
});

test("agent messages: ids, paths and sizes the agent would refuse are refused here", () => {
  assert.is(encodeAgentMessage({ kind: "kill", id: "a-1_b.c" }).toString(), "kill a-1_b.c\n");
  assert.is(encodeAgentMessage({ kind: "collect", guest_path: "/tmp/out.txt" }).toString(), "collect /tmp/out.txt\n");
  assert.throws(() => encodeAgentMessage({ kind: "run", id: "bad id", command: "true" }), /id/);
  assert.throws(() => encodeAgentMessage({ kind: "run", id: "x".repeat(65), command: "true" }), /id/);
  assert.throws(() => encodeAgentMessage({ kind: "run", id: "a", command: "" }), /empty/);
  assert.throws(() => encodeAgentMessage({ kind: "run", id: "a", command: "x".repeat(AGENT_MESSAGE_BYTES_MAX) }), /at most 1472/);
  assert.throws(() => encodeAgentMessage({ kind: "collect", guest_path: "relative" }), /absolute/);
  assert.throws(() => encodeAgentMessage({ kind: "collect", guest_path: "/a b" }), /spaces/);
});

test("parser: markers split anywhere, CRLF, output lines, exit code and signal, junk ignored", () => {
  const text =
    "[   1.2] kernel noise\r\ntapsim-agent: listening 10.251.0.2:5999\r\nPlease press Enter to activate this console. tapsim-agent: start c1 t=2000000123\r\n[c1] hello world\r\n[c1] \r\n" +
    "tapsim-agent: exit c1 code=3 t=2000500000\r\ntapsim-agent: exit k signal=9 t=2100000000\r\ntapsim-agent: error run x: no\r\nrandom [line\r\n";
  for (const step of [1, 3, 7, 1000]) {
    const p = new AgentParser();
    const events: AgentEvent[] = [];
    for (let i = 0; i < text.length; i += step) events.push(...p.push(text.slice(i, i + step)));
    assert.equal(events, [
      { kind: "listening" },
      { kind: "start", id: "c1", guest_ns: 2000000123 },
      { kind: "output", id: "c1", line: "hello world" },
      { kind: "output", id: "c1", line: "" },
      { kind: "exit", id: "c1", guest_ns: 2000500000, code: 3, signal: null },
      { kind: "exit", id: "k", guest_ns: 2100000000, code: null, signal: 9 },
      { kind: "error", reason: "run x: no" },
    ], `pieces of ${step}`);
  }
});

test("parser: a collected file is reassembled and checked (size, sha256); nofile and damage are errors", () => {
  const bytes = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7) & 0xff));
  const sha = createHash("sha256").update(bytes).digest("hex");
  const data = [0, 765, 1530].map((o) => `tapsim-agent: data ${bytes.subarray(o, o + 765).toString("base64")}\r\n`).join("");
  const good = `tapsim-agent: file /tmp/f size=2000\r\n${data}tapsim-agent: end /tmp/f sha256=${sha}\r\n`;
  const p = new AgentParser();
  const events = [...p.push(good.slice(0, 100)), ...p.push(good.slice(100))];
  assert.is(events.length, 1);
  const e = events[0]!;
  assert.ok(e.kind === "file" && e.error === null && e.bytes!.equals(bytes));
  const bad = good.replace(`sha256=${sha}`, `sha256=${"0".repeat(64)}`);
  assert.equal(new AgentParser().push(bad), [{ kind: "file", guest_path: "/tmp/f", bytes: null, error: "sha256 mismatch (console data damaged)" }]);
  assert.equal(new AgentParser().push("tapsim-agent: nofile /x No such file or directory\n"), [{ kind: "file", guest_path: "/x", bytes: null, error: "No such file or directory" }]);
});

test.run();
