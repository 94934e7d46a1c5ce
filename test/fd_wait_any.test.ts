// tapio-rs's fdWaitAny on real unix sockets (as the gate channels are): it names the socket that
// has something to read, the lowest when several do, a closed peer counts as ready, and it
// gives up after its timeout. The pipelined schedule collects VMs' slices through it.

import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { fdWaitAny } from "../nodes/tap/tapio.js";

const dir = mkdtempSync(path.join(tmpdir(), "tapsim-waitany-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** `count` connected pairs; the accepted ends never read (pauseOnConnect), so what is written stays readable on their fds. */
async function socketPairs(count: number): Promise<{ fds: Int32Array; clients: net.Socket[]; close: () => void }> {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (s) => accepted.push(s));
  const where = path.join(dir, `s${count}.sock`);
  await new Promise<void>((resolve) => server.listen(where, resolve));
  const clients: net.Socket[] = [];
  for (let k = 0; k < count; k++) {
    const c = net.connect(where);
    await new Promise<void>((resolve) => c.once("connect", resolve));
    clients.push(c);
    for (let turns = 0; accepted.length <= k && turns < 1000; turns++) await new Promise((r) => setTimeout(r, 1));
  }
  const fds = Int32Array.from(accepted.map((s) => (s as unknown as { _handle: { fd: number } })._handle.fd));
  const close = () => {
    for (const s of [...clients, ...accepted]) s.destroy();
    server.close();
  };
  return { fds, clients, close };
}

async function written(c: net.Socket, text: string): Promise<void> {
  await new Promise<void>((resolve, reject) => c.write(text, (err) => (err ? reject(err) : resolve())));
  await new Promise((r) => setTimeout(r, 20)); // the bytes cross the socket
}

test("fdWaitAny names the readable socket, the lowest of several, a closed peer; times out when none", async () => {
  const { fds, clients, close } = await socketPairs(3);
  try {
    assert.ok(fds.every((fd) => fd >= 0));
    assert.throws(() => fdWaitAny(fds, 50), /within 50 ms/, "nothing written: timeout");
    await written(clients[2]!, "x");
    assert.is(fdWaitAny(fds, 1000), 2);
    await written(clients[1]!, "y");
    assert.is(fdWaitAny(fds, 1000), 1, "the lowest ready index");
    clients[0]!.end();
    await new Promise((r) => setTimeout(r, 20));
    assert.is(fdWaitAny(fds, 1000), 0, "a peer that closed counts as ready");
    assert.throws(() => fdWaitAny(new Int32Array(0), 0), /not file descriptors/);
    assert.throws(() => fdWaitAny(Int32Array.of(-1), 0), /not file descriptors/);
  } finally {
    close();
  }
});

test.run();
