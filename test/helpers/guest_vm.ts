// Boots one default-image VM with plain QEMU (no slice gate, no engine) for the guest and
// SSH tests: two virtio-net NICs at fixed PCI slots (eth0 user-net with the SSH port
// forward, eth1 the simulated NIC on an unconnected hub port), serial console to a file,
// and optionally an extra initramfs archive appended (root's authorized_keys, say).

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import type { InitramfsImage } from "../../guest/image.js";
import { kernelCmdline } from "../../guest/image.js";

export interface GuestVm {
  child: ChildProcess;
  pid: number;
  port: number;
  serial_path: string;
  args: string[];
}

/** A port free on 127.0.0.1 right now (QEMU binds it a moment later; a clash fails loudly). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function qemuArgs(image: InitramfsImage, o: { port: number; serial_path: string; initrd_path: string; id: number; ip_cidr: string; hostname: string; sim_mac: string }): string[] {
  return [
    "-M", "pc", "-accel", "tcg", "-m", "256", "-smp", "1",
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    "-serial", `file:${o.serial_path}`,
    "-kernel", image.kernel_path, "-initrd", o.initrd_path,
    "-append", kernelCmdline(image, { id: o.id, ip_cidr: o.ip_cidr, hostname: o.hostname }),
    "-netdev", `user,id=mgmt,net=10.255.0.0/24,host=10.255.0.2,restrict=on,hostfwd=tcp:127.0.0.1:${o.port}-10.255.0.15:22`,
    "-device", "virtio-net-pci,netdev=mgmt,addr=0x3,mac=52:54:00:00:ff:01",
    "-netdev", "hubport,hubid=0,id=sim",
    "-device", `virtio-net-pci,netdev=sim,addr=0x4,mac=${o.sim_mac}`,
  ];
}

export async function startVm(image: InitramfsImage, run_dir: string, node: { id: number; ip_cidr: string; hostname: string; sim_mac: string }, extra_archive?: Buffer): Promise<GuestVm> {
  const port = await freePort();
  const serial_path = path.join(run_dir, `serial-${node.id}.log`);
  let initrd_path = image.initrd_path;
  if (extra_archive !== undefined) {
    initrd_path = path.join(run_dir, `initrd-${node.id}.cpio.gz`);
    writeFileSync(initrd_path, Buffer.concat([readFileSync(image.initrd_path), extra_archive]));
  }
  const args = qemuArgs(image, { port, serial_path, initrd_path, ...node });
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr!.resume();
  await new Promise<void>((resolve, reject) => child.once("spawn", resolve).once("error", reject));
  return { child, pid: child.pid!, port, serial_path, args };
}

/** Polls the serial log for a line matching re; fails early if QEMU exits or the guest reports a failure. */
export async function waitForSerial(vm: GuestVm, re: RegExp, timeout_ms: number): Promise<string> {
  const deadline_ms = Date.now() + timeout_ms;
  while (Date.now() < deadline_ms) {
    const text = existsSync(vm.serial_path) ? readFileSync(vm.serial_path, "utf8") : "";
    const line = text.split("\n").find((l) => re.test(l));
    if (line !== undefined) return line;
    if (/tapsim-guest: FAILED/.test(text)) throw new Error(`guest failed: ${text.slice(-500)}`);
    if (vm.child.exitCode !== null) throw new Error(`qemu exited (${vm.child.exitCode}) before ${re}: ${text.slice(-500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${re} on the serial console within ${timeout_ms} ms`);
}

/** SIGTERM, then SIGKILL after a grace period; this PID only. */
export async function stopVm(vm: GuestVm): Promise<void> {
  if (vm.child.exitCode !== null || vm.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => vm.child.once("exit", () => resolve()));
  process.kill(vm.pid, "SIGTERM");
  const timer = setTimeout(() => {
    if (vm.child.exitCode === null && vm.child.signalCode === null) process.kill(vm.pid, "SIGKILL");
  }, 3000);
  await exited;
  clearTimeout(timer);
}
