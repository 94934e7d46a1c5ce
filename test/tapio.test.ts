// tapio-rs through real TAP devices: create/up/delete, errors, and frames both ways with a
// network namespace on the other side (its kernel answers ARP and ping through the TAP).

import { test } from "uvu";
import * as assert from "uvu/assert";
import { InputError } from "../engine/errors.js";
import { monotonicNs, TapDevice, type ReadBatch } from "../nodes/tap/tapio.js";
import { arpRequest, deleteNamespace, icmpEcho, ip, joinNamespace, linkExists } from "./helpers/netns.js";

const PREFIX = `tt${process.pid % 100000}`;
const NS = `tapsim-test-${process.pid}`;
const HOST_MAC = "02:00:00:00:00:09";
test.after(() => deleteNamespace(NS));

function frames(batch: ReadBatch): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < batch.count; i++) {
    out.push(batch.bytes.slice(off, off + batch.lens[i]!));
    off += batch.lens[i]!;
  }
  return out;
}

/** Reads until `want` frames matched or the wait times out. */
async function readUntil(tap: TapDevice, match: (f: Uint8Array) => boolean, want: number): Promise<{ got: Uint8Array[]; stamps: number[] }> {
  const got: Uint8Array[] = [];
  const stamps: number[] = [];
  for (let round = 0; round < 1000 && got.length < want; round++) {
    if (!(await tap.waitReadable(5000))) break;
    const batch = tap.readBatch();
    frames(batch).forEach((f, i) => {
      if (match(f)) {
        got.push(f);
        stamps.push(batch.stamps_ns[i]!);
      }
    });
  }
  return { got, stamps };
}

test("a TAP is created up, has an ifindex and an fd, and is gone once closed", () => {
  const name = `${PREFIX}a`;
  const tap = TapDevice.create(name, { mtu: 9000 });
  try {
    assert.ok(linkExists(name));
    assert.ok(tap.fd > 2 && tap.ifindex > 0);
    const link = ip("link", "show", name);
    assert.match(link, /mtu 9000/);
    assert.match(link, /<[^>]*\bUP\b/);
  } finally {
    tap.close();
  }
  assert.not.ok(linkExists(name), "closing the fd deleted the device");
  assert.throws(() => tap.readBatch(), /closed/);
});

test("bad and duplicate names are one-line errors naming the device", () => {
  assert.throws(() => TapDevice.create("this-name-is-too-long"), (e: unknown) => e instanceof InputError && /1 to 15 bytes/.test((e as Error).message));
  assert.throws(() => TapDevice.create("a/b"), (e: unknown) => e instanceof InputError && /a\/b/.test((e as Error).message));
  const name = `${PREFIX}d`;
  const tap = TapDevice.create(name);
  try {
    assert.throws(() => TapDevice.create(name), (e: unknown) => e instanceof InputError && (e as Error).message.includes(name) && /busy|in use/i.test((e as Error).message));
  } finally {
    tap.close();
  }
});

test("frames both ways through a real TAP: ARP and ping answered by a namespace's kernel, stamped in order", async () => {
  const name = `${PREFIX}n`;
  const tap = TapDevice.create(name);
  try {
    joinNamespace(NS, name, "10.77.0.1/16");
    const before_ns = monotonicNs();
    assert.is(tap.writeBatch([arpRequest(HOST_MAC, "10.77.0.9", "10.77.0.1")]), 1);
    const arp = await readUntil(tap, (f) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2, 1);
    assert.is(arp.got.length, 1, "ARP reply read");
    const ns_mac = [...arp.got[0]!.subarray(6, 12)].map((b) => b.toString(16).padStart(2, "0")).join(":");
    const pings = Array.from({ length: 50 }, (_, seq) => icmpEcho(HOST_MAC, ns_mac, "10.77.0.9", "10.77.0.1", seq));
    assert.is(tap.writeBatch(pings), 50, "one batch of 50 echo requests");
    const replies = await readUntil(tap, (f) => f[12] === 0x08 && f[13] === 0x00 && f[23] === 1 && f[34] === 0, 50);
    assert.is(replies.got.length, 50);
    assert.equal(replies.got.map((f) => (f[40]! << 8) | f[41]!), Array.from({ length: 50 }, (_, i) => i), "replies in order");
    for (let i = 1; i < replies.stamps.length; i++) assert.ok(replies.stamps[i]! >= replies.stamps[i - 1]!, "stamps monotonic");
    assert.ok(replies.stamps[0]! >= before_ns && replies.stamps.at(-1)! <= monotonicNs());
  } finally {
    tap.close();
    deleteNamespace(NS);
  }
});

test("a new TAP stays quiet (no IPv6 chatter); waitReadable resolves false on timeout and on close", async () => {
  const tap = TapDevice.create(`${PREFIX}w`);
  assert.is(await tap.waitReadable(300), false);
  const waiting = tap.waitReadable(-1);
  tap.close();
  assert.is(await waiting, false);
});

test.run();
