// The default guest image: cache, reproducible initramfs (all but its random host key), and
// one real QEMU boot checked over SSH (cmdline settings, NIC order, key and password login,
// host-key check, scp-style copy). Also the user qcow2 image's errors and the SSH helpers'
// one-line errors.

import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { InputError } from "../engine/errors.js";
import { buildInitramfs, GUEST_MODULES, hasPvhNote, HOST_KEY_PATH, hostKeyArchive, resolvePackages } from "../guest/build.js";
import { ensureClientKey } from "../cli/client_key.js";
import { readCpioGz } from "../guest/cpio.js";
import { accessEntries, buildArchive } from "../guest/extra.js";
import { buildDefaultImage, defaultCacheRoot, ensureDefaultImage, imageInputs, type InitramfsImage, kernelCmdline, openUserImage } from "../guest/image.js";
import { SshError, sshCopy, sshExec, waitForSsh, type SshTarget } from "../qmp/ssh.js";
import { tapsim } from "./helpers/cli.js";
import { freePort, startVm, stopVm, waitForSerial } from "./helpers/guest_vm.js";

const tmp = mkdtempSync(path.join(tmpdir(), "tapsim-guest-"));
const HOST_KEY_FILE = HOST_KEY_PATH;
/** Bytes of the uncompressed host-key archive that opens every initramfs (the same for every key). */
const KEY_ARCHIVE_BYTES = hostKeyArchive(randomBytes(83)).length;
const quiet = () => {};
let image: InitramfsImage;

const home_before = process.env["TAPSIM_HOME"];

test.before(async () => {
  // The client key pair of these tests, not the user's (set here: uvu loads every test file first).
  process.env["TAPSIM_HOME"] = path.join(tmp, "home");
  image = await ensureDefaultImage({ log: quiet });
});

test.after(() => {
  restoreEnv("TAPSIM_HOME", home_before);
  rmSync(tmp, { recursive: true, force: true });
});

function restoreEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

test("default image: identity is sha256(kernel || initrd); the kernel is a PVH ELF; a second ensure is a cache hit", async () => {
  const kernel = readFileSync(image.kernel_path);
  const initrd = readFileSync(image.initrd_path);
  assert.is(image.identity, createHash("sha256").update(kernel).update(initrd).digest("hex"));
  assert.ok(hasPvhNote(kernel), "kernel is the uncompressed ELF with a PVH entry");
  assert.is(initrd.subarray(0, 6).toString("ascii"), "070701", "initrd opens with the uncompressed host-key archive");
  const gz = initrd.subarray(KEY_ARCHIVE_BYTES);
  assert.is(gz.subarray(0, 2).toString("hex"), "1f8b", "then the rest, gzip'd");
  assert.is(gz[9], 3, "gzip -n: OS byte unix, no name");
  assert.is(gz.readUInt32LE(4), 0, "gzip -n: no mtime");
  assert.match(image.dir, new RegExp(`^${defaultCacheRoot()}/images/default-[0-9a-f]{12}$`));
  assert.is(image.ssh_user, "root");
  assert.is(image.ssh_password, "1234");
  const again = await buildDefaultImage({ log: quiet });
  assert.is(again.rebuilt, false);
  assert.is(again.image.identity, image.identity);
  assert.is(again.manifest.packages.length, 10);
  assert.match(again.manifest.packages[0]!.name, /^linux-image-\d/);
  assert.match(again.manifest.host_key.public, /^ssh-ed25519 [A-Za-z0-9+/]+=*$/);
  assert.is(image.host_key_public, again.manifest.host_key.public);
  assert.is((statSync(image.dir).mode & 0o777).toString(8), "700", "the image folder is private: its initramfs holds the host key");
});

test("a new password builds a new image (from the cached packages), then is a cache hit; an empty password is refused", async () => {
  const lines: string[] = [];
  const first = await buildDefaultImage({ password: "test-pw-guest", log: (l) => lines.push(l) });
  try {
    assert.is(first.rebuilt, true);
    assert.ok(lines.some((l) => l.startsWith("building ")), lines.join("\n"));
    assert.not.ok(lines.some((l) => l.startsWith("downloading ")), "packages come from the cache");
    assert.is.not(first.image.dir, image.dir, "password is part of the cache key");
    assert.is.not(first.image.identity, image.identity);
    const second = await buildDefaultImage({ password: "test-pw-guest", log: quiet });
    assert.is(second.rebuilt, false);
    assert.is(second.image.identity, first.image.identity);
  } finally {
    rmSync(first.image.dir, { recursive: true, force: true });
  }
  for (const bad of ["", "a:b", "new\nline"]) {
    try {
      await buildDefaultImage({ password: bad, log: quiet });
      assert.unreachable(`password ${JSON.stringify(bad)}`);
    } catch (err) {
      assert.instance(err, InputError);
      assert.match((err as Error).message, /^--password: /);
    }
  }
});

test("initramfs: two builds from the same inputs are byte-identical; the cached image's differs only in its random host key, outside the gzip'd part", () => {
  const cache_root = defaultCacheRoot();
  const pins = resolvePackages(cache_root);
  const { inputs, host_key } = imageInputs(cache_root, pins, "1234", quiet);
  const a = path.join(tmp, "a.cpio.gz");
  const b = path.join(tmp, "b.cpio.gz");
  buildInitramfs(inputs, a);
  buildInitramfs(inputs, b);
  const bytes_a = readFileSync(a);
  assert.ok(bytes_a.equals(readFileSync(b)), "same bytes");
  // The host key is made by dropbearkey at each build, never derived from the (public) inputs.
  const again = imageInputs(cache_root, pins, "1234", quiet);
  assert.not.ok(again.inputs.host_key.equals(inputs.host_key), "a new host key on every build");
  assert.is.not(again.host_key.fingerprint, host_key.fingerprint);
  const cached_bytes = readFileSync(image.initrd_path);
  assert.is(cached_bytes.length, bytes_a.length);
  assert.ok(cached_bytes.subarray(KEY_ARCHIVE_BYTES).equals(bytes_a.subarray(KEY_ARCHIVE_BYTES)), "another key changes no gzip'd byte (so no guest timing)");
  assert.not.ok(cached_bytes.subarray(0, KEY_ARCHIVE_BYTES).equals(bytes_a.subarray(0, KEY_ARCHIVE_BYTES)));
  const built = readCpioGz(bytes_a);
  const cached = readCpioGz(cached_bytes);
  assert.equal(cached.map((e) => e.name), built.map((e) => e.name), "same entries in the same order");
  for (let i = 0; i < built.length; i++) {
    const [x, y] = [built[i]!, cached[i]!];
    if (x.name === HOST_KEY_FILE) {
      assert.ok(x.kind === "file" && y.kind === "file" && !x.data.equals(y.data), "the cached image has its own host key");
      assert.equal([x.mode, y.mode], [0o600, 0o600]);
    } else assert.equal(y, x, `${x.name} is the same in the cached image`);
  }
  // GNU cpio reads the key archive, then (past it) the gzip'd rest: the kernel's order.
  const listing = spawnSync("bash", ["-c", 'head -c "$2" "$1" | cpio -tv --quiet; tail -c +"$(($2 + 1))" "$1" | zcat | cpio -tv --quiet', "bash", a, `${KEY_ARCHIVE_BYTES}`], { encoding: "utf8" }).stdout;
  assert.match(listing, /^-rw------- .* etc\/dropbear\/dropbear_ed25519_host_key\n/m, "the key, owner-only");
  for (const want of [" init\n", " etc/shadow\n", " usr/sbin/dropbear\n", " usr/lib/openssh/sftp-server\n", " bin/busybox\n"]) {
    assert.ok(listing.includes(want), `initramfs has${want}`);
  }
  for (const m of GUEST_MODULES) assert.ok(listing.includes(`/${m}\n`), `initramfs has ${m}`);
  for (const line of listing.trimEnd().split("\n")) assert.match(line, / root +root .* 1970 /, `owner root, mtime fixed: ${line}`);
  assert.match(listing, /^-rw------- .* etc\/shadow$/m);
});

test("kernelCmdline: per-VM settings after the base; bad fields are one-line InputErrors naming them", () => {
  const line = kernelCmdline(image, { id: 3, ip_cidr: "10.0.0.4/16", hostname: "node3" });
  assert.is(line, `${image.kernel_cmdline_base} sim.id=3 sim.seed=1 sim.ip=10.0.0.4/16 sim.hostname=node3`);
  assert.match(kernelCmdline(image, { id: 3, ip_cidr: "10.0.0.4/16", hostname: "node3", seed: 7 }), / sim.seed=7 /);
  assert.match(image.kernel_cmdline_base, /console=ttyS0/);
  assert.match(image.kernel_cmdline_base, /ipv6\.disable=1/);
  const bad: [Parameters<typeof kernelCmdline>[1], RegExp][] = [
    [{ id: -1, ip_cidr: "10.0.0.1/16", hostname: "n" }, /node id -1/],
    [{ id: 1, ip_cidr: "10.0.0.300/16", hostname: "n" }, /node 1 ip "10\.0\.0\.300\/16"/],
    [{ id: 1, ip_cidr: "10.0.0.1", hostname: "n" }, /node 1 ip "10\.0\.0\.1": expected an IPv4 address with a prefix/],
    [{ id: 1, ip_cidr: "10.0.0.1/16", hostname: "a b" }, /node 1 hostname "a b"/],
  ];
  for (const [node, re] of bad) assert.throws(() => kernelCmdline(image, node), (err: Error) => err instanceof InputError && re.test(err.message) && !err.message.includes("\n"));
});

test("openUserImage: missing file, a non-qcow2 file, a directory: one-line errors naming the file; a qcow2 opens", async () => {
  const expectError = async (file: string, re: RegExp) => {
    try {
      await openUserImage(file, {});
      assert.unreachable(file);
    } catch (err) {
      assert.instance(err, InputError);
      const msg = (err as Error).message;
      assert.ok(msg.startsWith(file), msg);
      assert.match(msg, re);
      assert.not.match(msg, /\n/);
    }
  };
  await expectError(path.join(tmp, "missing.qcow2"), /: no such file$/);
  const text = path.join(tmp, "notes.txt");
  writeFileSync(text, "not a disk image\n");
  await expectError(text, /: not a qcow2 image \(qemu-img reads it as raw\)$/);
  await expectError(tmp, /: not a regular file/);
  const disk = path.join(tmp, "disk.qcow2");
  assert.is(spawnSync("qemu-img", ["create", "-q", "-f", "qcow2", disk, "16M"]).status, 0);
  const img = await openUserImage(path.relative(process.cwd(), disk), { ssh_user: "debian", ssh_password: "pw" });
  assert.equal({ kind: img.kind, path: img.path, ssh_user: img.ssh_user, ssh_password: img.ssh_password }, { kind: "qcow2", path: disk, ssh_user: "debian", ssh_password: "pw" });
  assert.match(img.identity, /^[0-9a-f]{64}$/);
  assert.is((await openUserImage(disk, {})).identity, img.identity, "identity is a function of the contents");
});

test("ssh: connection refused names the port, in one line", async () => {
  const port = await freePort();
  try {
    await sshExec({ host: "127.0.0.1", port, user: "root", password: "1234" }, "true", { timeout_ms: 5000 });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, SshError);
    assert.is((err as SshError).kind, "refused");
    assert.is((err as Error).message, `ssh root@127.0.0.1:${port}: connection refused on port ${port}`);
  }
  const t0_ms = Date.now();
  try {
    await waitForSsh({ host: "127.0.0.1", port, user: "root", password: "1234" }, { timeout_ms: 600, interval_ms: 100 });
    assert.unreachable();
  } catch (err) {
    assert.is((err as SshError).kind, "timeout");
    assert.match((err as Error).message, new RegExp(`no SSH within 0\\.6 s on port ${port} \\(last: connection refused`));
  }
  assert.ok(Date.now() - t0_ms < 3000, "waitForSsh stops at its deadline");
});

test("boot one VM: ready line, SSH (key, password, host key), cmdline settings, NIC order, hostname, copy", async () => {
  const run_dir = mkdtempSync(path.join(tmp, "run-"));
  const t0_ms = Date.now();
  // What `tapsim run --password` appends: root's authorized_keys and the password-login switch.
  const key = ensureClientKey();
  const extra = buildArchive(accessEntries(key.public_line, true), new Map()).gz;
  const vm = await startVm(image, run_dir, { id: 0, ip_cidr: "10.0.0.1/16", hostname: "node0", sim_mac: "02:00:00:00:00:00" }, extra);
  try {
    const ready = await waitForSerial(vm, /tapsim-guest: ready/, 90_000);
    const ready_ms = Date.now() - t0_ms;
    assert.match(ready, /^tapsim-guest: ready node=0 ip=10\.0\.0\.1 hostname=node0/);
    const host_keys = { accepted: [image.host_key_public], source: "image.json" };
    // A string key, so the target survives JSON.stringify into the sshInteractive children below.
    const t: SshTarget = { host: "127.0.0.1", port: vm.port, user: "root", private_key: key.private_key.toString(), host_keys };
    await waitForSsh(t, { timeout_ms: 60_000 });
    const ssh_ms = Date.now() - t0_ms;
    console.log(`  (boot: ready line after ${(ready_ms / 1000).toFixed(1)} s, SSH after ${(ssh_ms / 1000).toFixed(1)} s of wall time)`);
    const sh = async (cmd: string) => {
      const r = await sshExec(t, cmd, { timeout_ms: 30_000 });
      assert.is(r.code, 0, `${cmd}: ${r.stderr.toString()}`);
      return r.stdout.toString();
    };
    assert.match(await sh("cat /proc/cmdline"), /(^| )sim\.ip=10\.0\.0\.1\/16( |$)/m);
    const eth1 = await sh("ip addr show eth1");
    assert.match(eth1, /inet 10\.0\.0\.1\/16 /);
    assert.match(eth1, /link\/ether 02:00:00:00:00:00 /, "eth1 is the NIC at the higher PCI address");
    assert.match(await sh("ip addr show eth0"), /inet 10\.255\.0\.15\/24 /);
    assert.is((await sh("hostname")).trim(), "node0");
    assert.is((await sh("[ ! -e /proc/net/if_inet6 ] && echo no-ipv6")).trim(), "no-ipv6");
    const echoed = await sshExec(t, "cat; exit 3", { stdin: "over stdin", timeout_ms: 30_000 });
    assert.equal([echoed.code, echoed.stdout.toString()], [3, "over stdin"]);
    const by_password = await sshExec({ host: "127.0.0.1", port: vm.port, user: "root", password: "1234", host_keys }, "echo pw-ok", { timeout_ms: 30_000 });
    assert.is(by_password.stdout.toString(), "pw-ok\n", "the password-login switch lets passwords in");
    try {
      await sshExec({ host: "127.0.0.1", port: vm.port, user: "root", password: "wrong", host_keys }, "true", { timeout_ms: 30_000 });
      assert.unreachable("wrong password");
    } catch (err) {
      assert.instance(err, SshError);
      assert.is((err as SshError).kind, "auth");
      assert.is((err as Error).message, `ssh root@127.0.0.1:${vm.port}: authentication failed (password rejected for root)`);
    }
    const other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0wHTTMBF0LYvmWTjl2ApW/EpLIpDyB/zwwPAsHNVvu";
    try {
      await sshExec({ ...t, host_keys: { accepted: [other], source: "a stale known_hosts" } }, "true", { timeout_ms: 30_000 });
      assert.unreachable("wrong host key");
    } catch (err) {
      assert.instance(err, SshError);
      assert.is((err as SshError).kind, "hostkey");
      assert.match((err as Error).message, new RegExp(`^ssh root@127\\.0\\.0\\.1:${vm.port}: host key SHA256:\\S+ is not the one in a stale known_hosts \\(refusing to connect\\)$`));
    }
    const local = path.join(run_dir, "random.bin");
    const data = randomBytes(1 << 20);
    writeFileSync(local, data);
    await sshCopy(t, local, "/tmp/random.bin");
    assert.is((await sh("sha256sum /tmp/random.bin")).split(" ")[0], sha256(data));
    // sshInteractive without a terminal: plain pipes, the exit code comes back.
    const ssh_js = path.resolve("dist/qmp/ssh.js");
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", `import(${JSON.stringify(ssh_js)}).then((m) => m.sshInteractive(${JSON.stringify(t)})).then((c) => process.exit(c))`], {
      input: "echo hi-from-shell\nexit 7\n",
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.is(child.status, 7, child.stderr);
    assert.match(child.stdout, /hi-from-shell/);
    await interactiveInTmux(t, run_dir);
  } finally {
    await stopVm(vm);
  }
});

/** sshInteractive on a real terminal (tmux): a pty shell sized like the window; the exit code comes back. */
async function interactiveInTmux(t: SshTarget, run_dir: string): Promise<void> {
  const sock = path.join(run_dir, "tmux.sock");
  const exit_file = path.join(run_dir, "exit-code");
  const script = [
    'const fs = require("node:fs");',
    `import(${JSON.stringify(path.resolve("dist/qmp/ssh.js"))}).then((m) => m.sshInteractive(${JSON.stringify(t)})).then(`,
    `  (c) => { fs.writeFileSync(${JSON.stringify(exit_file)}, String(c)); process.exit(c); },`,
    `  (e) => { fs.writeFileSync(${JSON.stringify(exit_file)}, "error: " + e.message); process.exit(99); });`,
  ].join("\n");
  const tmux = (...args: string[]) => spawnSync("tmux", ["-S", sock, ...args], { encoding: "utf8" });
  const pane = () => tmux("capture-pane", "-p").stdout ?? "";
  assert.is(tmux("new-session", "-d", "-x", "100", "-y", "30", `${process.execPath} -e ${shellQuote(script)}`).status, 0);
  try {
    await until(() => /root@node0:~#\s*$/.test(pane()), 30_000, "the shell prompt in tmux", pane);
    tmux("send-keys", "stty size", "Enter");
    await until(() => /^30 100$/m.test(pane()), 30_000, "the pty size (30 rows, 100 columns)", pane);
    tmux("send-keys", "exit 5", "Enter");
    await until(() => existsSync(exit_file), 30_000, "sshInteractive to return", pane);
    assert.is(readFileSync(exit_file, "utf8"), "5");
  } finally {
    tmux("kill-server");
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

async function until(cond: () => boolean, timeout_ms: number, what: string, show: () => string): Promise<void> {
  const deadline_ms = Date.now() + timeout_ms;
  while (!cond()) {
    if (Date.now() > deadline_ms) throw new Error(`timed out waiting for ${what}; screen:\n${show()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("tapsim image build --force rebuilds in place with a new host key; info prints the cached image; a bad --password is one line, exit 2", () => {
  const before_bytes = readFileSync(image.initrd_path);
  const before = readCpioGz(before_bytes);
  const forced = tapsim("image", "build", "--force");
  assert.is(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, new RegExp(`^image: ${image.dir} \\(rebuilt\\)$`, "m"));
  const identity = /^identity: ([0-9a-f]{64})$/m.exec(forced.stdout)?.[1];
  assert.ok(identity !== undefined && identity !== image.identity, "a new host key, so a new identity");
  assert.match(forced.stderr, /^tapsim image: building /m);
  const after = readCpioGz(readFileSync(image.initrd_path));
  assert.equal(after.filter((e) => e.name !== HOST_KEY_FILE), before.filter((e) => e.name !== HOST_KEY_FILE), "everything but the host key is the same");
  assert.ok(readFileSync(image.initrd_path).subarray(KEY_ARCHIVE_BYTES).equals(before_bytes.subarray(KEY_ARCHIVE_BYTES)), "the gzip'd part is byte-identical");
  const info = tapsim("image", "info");
  assert.is(info.code, 0, info.stderr);
  assert.match(info.stdout, new RegExp(`^image: ${image.dir} \\(cached\\)$`, "m"));
  assert.match(info.stdout, new RegExp(`^identity: ${identity}$`, "m"));
  const bad = tapsim("image", "build", "--password", "");
  assert.is(bad.code, 2);
  assert.is(bad.stderr, "tapsim: --password: must not be empty\n");
});

test.run();
