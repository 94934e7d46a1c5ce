// Network namespaces and frames for tests of real TAP devices: a namespace that a TAP is
// moved into (so the kernel there answers ARP and ping through it), and hand-built frames.

import { ip } from "../../nodes/tap/netns.js";

export { deleteNamespace, ip, joinNamespace } from "../../nodes/tap/netns.js";

export function linkExists(name: string): boolean {
  try {
    ip("link", "show", name);
    return true;
  } catch {
    return false;
  }
}

const mac = (text: string) => text.split(":").map((h) => parseInt(h, 16));
const ipv4 = (text: string) => text.split(".").map(Number);

export function arpRequest(src_mac: string, src_ip: string, target_ip: string): Uint8Array {
  const f = new Uint8Array(42);
  f.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0);
  f.set(mac(src_mac), 6);
  f.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1], 12);
  f.set(mac(src_mac), 22);
  f.set(ipv4(src_ip), 28);
  f.set(ipv4(target_ip), 38);
  return f;
}

function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function icmpEcho(src_mac: string, dst_mac: string, src_ip: string, dst_ip: string, seq: number): Uint8Array {
  const payload_bytes = 32;
  const f = new Uint8Array(14 + 20 + 8 + payload_bytes);
  f.set(mac(dst_mac), 0);
  f.set(mac(src_mac), 6);
  f.set([0x08, 0x00], 12);
  const ip_hdr = f.subarray(14, 34);
  ip_hdr.set([0x45, 0, 0, 20 + 8 + payload_bytes, 0, seq & 0xff, 0, 0, 64, 1, 0, 0]);
  ip_hdr.set(ipv4(src_ip), 12);
  ip_hdr.set(ipv4(dst_ip), 16);
  const ip_sum = checksum(ip_hdr);
  ip_hdr[10] = ip_sum >> 8;
  ip_hdr[11] = ip_sum & 0xff;
  const icmp = f.subarray(34);
  icmp.set([8, 0, 0, 0, 0x12, 0x34, seq >> 8, seq & 0xff]);
  for (let i = 8; i < icmp.length; i++) icmp[i] = i;
  const icmp_sum = checksum(icmp);
  icmp[2] = icmp_sum >> 8;
  icmp[3] = icmp_sum & 0xff;
  return f;
}
