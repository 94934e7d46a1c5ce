// The management network of a VM run: one TAP device per VM on the host (owned by tapio-rs,
// gone when the process is), with the host end of a /24 per node, and a TCP forward from
// 127.0.0.1:(port base + i) to the guest's SSH port. The guest's management NIC is fed only
// by the slice gate: frames the host writes into TAP i are injected into VM i at the start
// of its next slice, and recorded (mgmt_in); frames the guest sends are recorded (mgmt_out)
// and written into the TAP after the slice. So ssh, scp, sftp and port forwards from the
// host work unchanged, through the host's own TCP stack, and a run stays a closed world.

import { execFileSync } from "node:child_process";
import { createServer, connect, type Server, type Socket } from "node:net";
import { InputError } from "../engine/errors.js";
import { TapDevice } from "../nodes/tap/tapio.js";

/** Default first two octets of the management network: node i is 10.254.i.0/24. */
export const MGMT_NET_DEFAULT = "10.254";
export const MGMT_NODES_MAX = 256;
/** Frames taken from one TAP for one slice; more wait for the next slice. */
const MGMT_FRAMES_PER_SLICE_MAX = 1024;
const FORWARD_CONNECT_TIMEOUT_MS = 20_000;

export function parseMgmtNet(text: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) throw new InputError(`--mgmt-net ${JSON.stringify(text)}: expected the first two octets of a private /16, like 10.254`);
  return text;
}

/** The guest's end of node i's management link (on the kernel command line). */
export function guestMgmtCidr(net: string, node: number): string {
  if (!(node >= 0 && node < MGMT_NODES_MAX)) throw new RangeError(`node ${node}: the management network has room for ${MGMT_NODES_MAX} nodes`);
  return `${net}.${node}.2/24`;
}

export function guestMgmtAddr(net: string, node: number): string {
  return `${net}.${node}.2`;
}

function hostMgmtCidr(net: string, node: number): string {
  return `${hostMgmtAddr(net, node)}/24`;
}

/** The host's end of node i's management link (agent datagrams come from it). */
export function hostMgmtAddr(net: string, node: number): string {
  if (!(node >= 0 && node < MGMT_NODES_MAX)) throw new RangeError(`node ${node}: the management network has room for ${MGMT_NODES_MAX} nodes`);
  return `${net}.${node}.1`;
}

/** One VM's end of the management network, as its backend sees it. */
export interface MgmtPort {
  /** Frames the host sent since the last call (at most a slice's worth). */
  takeFrames(): Uint8Array[];
  /** Frames the guest sent, handed to the host. */
  giveFrames(frames: readonly Uint8Array[]): void;
}

class TapPort implements MgmtPort {
  constructor(private readonly tap: TapDevice) {}

  takeFrames(): Uint8Array[] {
    const batch = this.tap.readBatch(MGMT_FRAMES_PER_SLICE_MAX);
    const frames: Uint8Array[] = [];
    let off = 0;
    for (let i = 0; i < batch.count; i++) {
      const len = batch.lens[i]!;
      frames.push(batch.bytes.slice(off, off + len)); // a copy: the batch buffer is reused
      off += len;
    }
    return frames;
  }

  giveFrames(frames: readonly Uint8Array[]): void {
    if (frames.length > 0) this.tap.writeBatch(frames);
  }
}

export class MgmtNet {
  private constructor(
    readonly ports: MgmtPort[],
    private readonly taps: TapDevice[],
    private readonly servers: Server[],
    private readonly sockets: Set<Socket>,
  ) {}

  /** TAPs named `tsm<run_id><i>`, host addresses, and the SSH forwards; undone on any failure. */
  static async open(o: { run_id: string; nodes: number; net: string; ssh_port_base: number }): Promise<MgmtNet> {
    if (!/^[a-z0-9]{1,6}$/.test(o.run_id)) throw new RangeError(`run id ${o.run_id}: 1-6 lowercase letters or digits`);
    refuseIfInUse(o.net, o.nodes);
    const net = new MgmtNet([], [], [], new Set());
    try {
      for (let i = 0; i < o.nodes; i++) {
        const tap = TapDevice.create(`tsm${o.run_id}${i}`);
        net.taps.push(tap);
        ip("addr", "add", hostMgmtCidr(o.net, i), "dev", tap.name);
        net.ports.push(new TapPort(tap));
        net.servers.push(await forward(o.ssh_port_base + i, guestMgmtAddr(o.net, i), net.sockets));
      }
      return net;
    } catch (err) {
      net.close();
      throw err;
    }
  }

  close(): void {
    for (const s of this.servers) s.close();
    for (const s of this.sockets) s.destroy();
    for (const t of this.taps) t.close();
    this.servers.length = 0;
    this.taps.length = 0;
  }
}

function refuseIfInUse(net: string, nodes: number): void {
  const addrs = ip("-4", "-o", "addr", "show");
  for (let i = 0; i < nodes; i++) {
    const host = hostMgmtCidr(net, i).split("/")[0]!;
    if (new RegExp(`inet ${host.replace(/\./g, "\\.")}/`).test(addrs)) {
      throw new InputError(`management network ${net}.0.0/16: ${host} is already in use on this host (another run?); pick another with --mgmt-net`);
    }
  }
}

/** 127.0.0.1:port -> guest:22 through the host's stack; nothing else listens. */
function forward(port: number, guest_addr: string, sockets: Set<Socket>): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((client) => {
      const upstream = connect({ host: guest_addr, port: 22, timeout: FORWARD_CONNECT_TIMEOUT_MS });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.on("error", () => {}); // the other end is closed in "close"
      }
      upstream.once("connect", () => upstream.setTimeout(0));
      upstream.once("timeout", () => upstream.destroy());
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    server.once("error", (err: NodeJS.ErrnoException) => reject(new InputError(`127.0.0.1:${port}: cannot listen for the SSH forward (${err.code ?? err.message}); pick another --ssh-port-base`)));
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

function ip(...args: string[]): string {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const why = String((err as { stderr?: string }).stderr ?? err).trim().split("\n")[0];
    throw new Error(`ip ${args.join(" ")}: ${why}`);
  }
}
