// Access to the VMs of a run is locked down (issue #9): a client key pair made on first use
// (0600 in a 0700 folder) reaches each guest as root's authorized_keys; the guests refuse
// passwords unless the run was given one (here through TAPSIM_GUEST_PASSWORD, so it is in
// no process's argv); `tapsim exec` and plain OpenSSH check the host key against the run's
// known_hosts, found through its run-state file, which goes away with the run.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { findDefaultImage } from "../guest/image.js";
import { SshError, sshExec, type SshTarget } from "../qmp/ssh.js";
import { TraceReader } from "../recorder/reader.js";
import { tapsim } from "./helpers/cli.js";
import { leftovers, runResources, startRun, stopRun } from "./helpers/vm.js";

const dir = mkdtempSync(path.join(tmpdir(), "tsE-ssh-"));
const home = path.join(dir, "home");
const home_before = process.env["TAPSIM_HOME"];
const MATRIX_1 = "latency_configs/delays_1x1.txt";
const BOOT_TIMEOUT_MS = 300_000;
const OTHER_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0wHTTMBF0LYvmWTjl2ApW/EpLIpDyB/zwwPAsHNVvu";

test.before(() => {
  // The client key pair and run files of these tests, not the user's (set here: uvu loads every test file first).
  process.env["TAPSIM_HOME"] = home;
});

test.after(() => {
  if (home_before === undefined) delete process.env["TAPSIM_HOME"];
  else process.env["TAPSIM_HOME"] = home_before;
  rmSync(dir, { recursive: true, force: true });
});

function mode(file: string): string {
  return (statSync(file).mode & 0o777).toString(8);
}

function exec(port_base: number, ...args: string[]) {
  return tapsim("exec", "--ssh-port-base", String(port_base), ...args);
}

/** OpenSSH with nothing from ~/.ssh: the tapsim key (or none), the run's known_hosts, no prompts. */
function openssh(port: number, known_hosts: string, key: string | null, command: string) {
  const auth = key === null ? ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password"] : ["-i", key, "-o", "IdentitiesOnly=yes"];
  const r = spawnSync("ssh", ["-F", "/dev/null", ...auth, "-o", `UserKnownHostsFile=${known_hosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", String(port), "root@127.0.0.1", command], {
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("default run: key pair 0600/0700, authorized_keys in the guest, passwords refused, OpenSSH and tapsim exec check the host key, run files removed at the end", async () => {
  const port_base = 2620;
  const trace = path.join(dir, "keys.trace");
  const run = startRun(["run", "--vms", "1", "--latency", MATRIX_1, "--trace", trace, "--ssh-port-base", String(port_base), "--no-progress"]);
  try {
    await run.waitFor(/^READY /m, BOOT_TIMEOUT_MS);
    await run.waitFor(/run dir \S+; QEMU pids [\d ]+;/, 10_000);
    const resources = runResources(run.stderr());
    assert.is(mode(home), "700");
    assert.is(mode(path.join(home, "id_ed25519")), "600");
    assert.match(readFileSync(path.join(home, "id_ed25519"), "utf8"), /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    const public_line = readFileSync(path.join(home, "id_ed25519.pub"), "utf8").split(" ").slice(0, 2).join(" ");
    const state_file = path.join(home, "runs", `${port_base}.json`);
    const state = JSON.parse(readFileSync(state_file, "utf8")) as { pid: number; run_dir: string; ports: number[]; known_hosts: string; password_login: boolean };
    assert.equal([state.pid, state.run_dir, state.ports, state.password_login], [run.child.pid, resources.run_dir, [port_base], false]);
    assert.is(mode(state.known_hosts), "600");
    const image = findDefaultImage()!.image;
    assert.is(readFileSync(state.known_hosts, "utf8"), `[127.0.0.1]:${port_base} ${image.host_key_public}\n`);

    const keys = exec(port_base, "--node", "0", "--", "cat /root/.ssh/authorized_keys; stat -c %a /root/.ssh /root/.ssh/authorized_keys");
    assert.is(keys.code, 0, keys.stderr);
    assert.is(keys.stdout, `${public_line}\n700\n600\n`, "the client's public key is root's authorized key");
    // Password login is off: dropbear offers publickey only, and 1234 no longer opens the guest.
    const plain_pw = openssh(port_base, state.known_hosts, null, "true");
    assert.is(plain_pw.code, 255);
    assert.match(plain_pw.stderr, /Permission denied \(publickey\)/);
    await assertRefused({ host: "127.0.0.1", port: port_base, user: "root", password: "1234" }, "auth");
    const plain = openssh(port_base, state.known_hosts, path.join(home, "id_ed25519"), "echo plain-ok");
    assert.is(plain.code, 0, plain.stderr);
    assert.is(plain.stdout, "plain-ok\n");

    // A host key other than the image's: tapsim exec and OpenSSH both refuse, in one line.
    const genuine = readFileSync(state.known_hosts, "utf8");
    writeFileSync(state.known_hosts, `[127.0.0.1]:${port_base} ${OTHER_HOST_KEY}\n`);
    const spoofed = exec(port_base, "--node", "0", "--", "echo should-not-run");
    writeFileSync(state.known_hosts, genuine);
    assert.is(spoofed.code, 1, spoofed.stderr);
    assert.is(spoofed.stdout, "");
    assert.match(spoofed.stderr, new RegExp(`^tapsim: ssh root@127\\.0\\.0\\.1:${port_base}: host key SHA256:\\S+ is not the one in ${state.known_hosts} \\(refusing to connect\\)`));
    assert.is(spoofed.stderr.trimEnd().split("\n").length, 1, spoofed.stderr);
    assert.is(exec(port_base, "--all", "--", "true").code, 0, "the genuine key is accepted again");

    run.child.kill("SIGINT");
    const exit = await run.done;
    assert.is(exit.code, 130, run.stderr());
    assert.equal(leftovers(resources), []);
    assert.not.ok(existsSync(state_file), "run-state file removed");
    assert.not.ok(existsSync(state.known_hosts), "known_hosts removed");
    const gone = exec(port_base, "--all", "--", "true");
    assert.is(gone.code, 2);
    assert.is(gone.stderr, `tapsim: no running \`tapsim run --vms\` with --ssh-port-base ${port_base} (${state_file} is missing or its run has ended)\n`);
    const reader = TraceReader.open(trace);
    const additions = reader.header.config.vm!.additions!;
    reader.close();
    assert.is(additions.ssh_password_login, false);
    assert.ok(additions.nodes[0]!.files.some((f) => f.path === "/root/.ssh/authorized_keys"), "the key is a recorded input");
  } finally {
    await stopRun(run);
  }
});

test("--password through TAPSIM_GUEST_PASSWORD: password login works, the password is in no process's argv, the trace or the run files", async () => {
  const port_base = 2630;
  const password = `tsE-pw-${process.pid}`;
  const trace = path.join(dir, "pw.trace");
  const run = startRun(["run", "--vms", "1", "--latency", MATRIX_1, "--trace", trace, "--ssh-port-base", String(port_base), "--no-progress"], { TAPSIM_GUEST_PASSWORD: password });
  try {
    await run.waitFor(/^READY /m, BOOT_TIMEOUT_MS);
    const state_file = path.join(home, "runs", `${port_base}.json`);
    const state = JSON.parse(readFileSync(state_file, "utf8")) as { known_hosts: string; password_login: boolean };
    assert.is(state.password_login, true);
    const host_keys = { accepted: [readFileSync(state.known_hosts, "utf8").split(" ").slice(1).join(" ").trim()], source: state.known_hosts };
    const r = await sshExec({ host: "127.0.0.1", port: port_base, user: "root", password, host_keys }, "echo pw-ok", { timeout_ms: 60_000 });
    assert.is(r.stdout.toString(), "pw-ok\n", "password only, no key");
    await assertRefused({ host: "127.0.0.1", port: port_base, user: "root", password: "1234", host_keys }, "auth");
    assert.equal(processesShowing(password), [], "the password is in no command line");
    assert.not.ok(readFileSync(state_file, "utf8").includes(password));
    const pw_file = path.join(dir, "pw");
    writeFileSync(pw_file, `${password}\n`);
    const by_file = exec(port_base, "--node", "0", "--password-file", pw_file, "--", "echo file-ok");
    assert.is(by_file.code, 0, by_file.stderr);
    const bad_file = exec(port_base, "--node", "0", "--password-file", path.join(dir, "missing"), "--", "true");
    assert.equal([bad_file.code, bad_file.stderr], [2, `tapsim: --password-file ${path.join(dir, "missing")}: no such file\n`]);
    run.child.kill("SIGINT");
    assert.is((await run.done).code, 130, run.stderr());
    const reader = TraceReader.open(trace);
    const header = reader.header;
    reader.close();
    assert.is(header.config.vm!.additions!.ssh_password_login, true);
    assert.not.ok(JSON.stringify(header).includes(password), "the trace header has no password");
  } finally {
    await stopRun(run);
    const built = findDefaultImage({ password });
    if (built) rmSync(built.image.dir, { recursive: true, force: true });
  }
});

test("a stale run-state file (its tapsim is gone) is ignored; --password and --password-file together: one line, exit 2", () => {
  const dead = spawnSync("true").pid!;
  const runs = path.join(home, "runs");
  mkdirSync(runs, { recursive: true });
  writeFileSync(path.join(runs, "2639.json"), JSON.stringify({ format: 1, pid: dead, run_dir: "/nonexistent", port_base: 2639, ports: [2639], known_hosts: "/nonexistent", image_kind: "initramfs", password_login: false, user: "root" }));
  const r = exec(2639, "--all", "--", "true");
  assert.is(r.code, 2);
  assert.match(r.stderr, /^tapsim: no running `tapsim run --vms` with --ssh-port-base 2639 /);
  const both = tapsim("run", "--vms", "1", "--latency", MATRIX_1, "--password", "x", "--password-file", path.join(dir, "pw"), "--trace", path.join(dir, "x.trace"));
  assert.equal([both.code, both.stderr], [2, "tapsim: --password and --password-file: choose one\n"]);
});

async function assertRefused(t: SshTarget, kind: SshError["kind"]): Promise<void> {
  try {
    await sshExec(t, "true", { timeout_ms: 60_000 });
    assert.unreachable(`${JSON.stringify({ ...t, private_key: undefined })} logged in`);
  } catch (err) {
    assert.instance(err, SshError);
    assert.is((err as SshError).kind, kind, (err as Error).message);
  }
}

/** Pids whose command line contains `text`. */
function processesShowing(text: string): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}


test.run();
