// Ethernet/IPv4/UDP framing for in-process nodes, and the deterministic addressing plan
// (MAC and IP per node) shared by every backend, so traces look the same whoever sent them.

export const ETH_HEADER_BYTES = 14;
export const IPV4_HEADER_BYTES = 20;
export const UDP_HEADER_BYTES = 8;
export const UDP_FRAME_OVERHEAD_BYTES = ETH_HEADER_BYTES + IPV4_HEADER_BYTES + UDP_HEADER_BYTES;
export const ETH_FRAME_BYTES_MAX = 1514;
const ETHERTYPE_IPV4 = 0x0800;
const IP_PROTO_UDP = 17;

/** Locally administered unicast MAC 02:00:00:00:HH:LL for node `id`, as a 48-bit number. */
export function nodeMac(id: number): number {
  return 0x020000000000 + id;
}

/** 10.0.0.0/16: node 0 is 10.0.0.1, node 255 is 10.0.1.0, as a 32-bit number. */
export function nodeIpv4(id: number): number {
  return (0x0a000000 + id + 1) >>> 0;
}

export function formatMac(mac: number): string {
  const parts: string[] = [];
  for (let shift = 40; shift >= 0; shift -= 8) {
    parts.push((Math.floor(mac / 2 ** shift) & 0xff).toString(16).padStart(2, "0"));
  }
  return parts.join(":");
}

export function parseMac(text: string): number {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (!m) throw new RangeError(`not a MAC address: "${text}"`);
  return m.slice(1).reduce((acc, h) => acc * 256 + parseInt(h, 16), 0);
}

export function formatIpv4(ip: number): string {
  return [ip >>> 24, (ip >>> 16) & 0xff, (ip >>> 8) & 0xff, ip & 0xff].join(".");
}

/** Destination MAC of a frame as a 48-bit number. */
export function frameDstMac(frame: Uint8Array): number {
  return (
    frame[0]! * 0x10000000000 +
    frame[1]! * 0x100000000 +
    ((frame[2]! << 24) >>> 0) +
    (frame[3]! << 16) +
    (frame[4]! << 8) +
    frame[5]!
  );
}

/** Group bit set: broadcast or multicast. */
export function isGroupMac(frame: Uint8Array): boolean {
  return (frame[0]! & 1) === 1;
}

export interface UdpAddress {
  mac: number;
  ip: number;
  port: number;
}

/** A complete Ethernet II + IPv4 + UDP frame (UDP checksum 0 = none, valid over IPv4). */
export function buildUdpFrame(src: UdpAddress, dst: UdpAddress, payload: Uint8Array): Uint8Array {
  const frame = udpHeaders(src, dst, payload.length, new Uint8Array(UDP_FRAME_OVERHEAD_BYTES + payload.length));
  frame.set(payload, UDP_FRAME_OVERHEAD_BYTES);
  return frame;
}

/**
 * Writes the Ethernet, IPv4 and UDP headers for a payload of `payload_bytes` into the first
 * UDP_FRAME_OVERHEAD_BYTES of `frame` (which must be at least that plus the payload long).
 * Senders of many same-sized frames keep the result as a template and copy it.
 */
export function udpHeaders(src: UdpAddress, dst: UdpAddress, payload_bytes: number, frame: Uint8Array): Uint8Array {
  const length = UDP_FRAME_OVERHEAD_BYTES + payload_bytes;
  if (length > ETH_FRAME_BYTES_MAX) throw new RangeError(`UDP payload of ${payload_bytes} bytes exceeds one frame`);
  if (frame.length < length) throw new RangeError(`frame buffer of ${frame.length} bytes is shorter than ${length}`);
  writeMac(frame, 0, dst.mac);
  writeMac(frame, 6, src.mac);
  writeU16(frame, 12, ETHERTYPE_IPV4);
  writeIpv4Header(frame, ETH_HEADER_BYTES, src.ip, dst.ip, IPV4_HEADER_BYTES + UDP_HEADER_BYTES + payload_bytes);
  const udp = ETH_HEADER_BYTES + IPV4_HEADER_BYTES;
  writeU16(frame, udp, src.port);
  writeU16(frame, udp + 2, dst.port);
  writeU16(frame, udp + 4, UDP_HEADER_BYTES + payload_bytes);
  return frame;
}

/** Offset of the UDP payload in an Ethernet/IPv4/UDP frame, or -1 when it is not one. */
export function udpPayloadOffset(frame: Uint8Array): number {
  return udpPayloadOffsetIn(frame, 0, frame.length);
}

/** udpPayloadOffset of the frame in buf[o, o + length): the payload's offset in buf, or -1. */
export function udpPayloadOffsetIn(buf: Uint8Array, o: number, length: number): number {
  if (length < UDP_FRAME_OVERHEAD_BYTES) return -1;
  if (((buf[o + 12]! << 8) | buf[o + 13]!) !== ETHERTYPE_IPV4) return -1;
  if (buf[o + ETH_HEADER_BYTES + 9] !== IP_PROTO_UDP) return -1;
  const start = ETH_HEADER_BYTES + (buf[o + ETH_HEADER_BYTES]! & 0x0f) * 4 + UDP_HEADER_BYTES;
  return start <= length ? o + start : -1;
}

function writeIpv4Header(frame: Uint8Array, o: number, src: number, dst: number, total: number): void {
  frame[o] = 0x45; // version 4, 20-byte header
  writeU16(frame, o + 2, total);
  frame[o + 6] = 0x40; // don't fragment
  frame[o + 8] = 64; // TTL
  frame[o + 9] = IP_PROTO_UDP;
  writeU32(frame, o + 12, src);
  writeU32(frame, o + 16, dst);
  let sum = 0;
  for (let i = 0; i < IPV4_HEADER_BYTES; i += 2) sum += (frame[o + i]! << 8) | frame[o + i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  writeU16(frame, o + 10, ~sum & 0xffff);
}

function writeMac(frame: Uint8Array, o: number, mac: number): void {
  for (let i = 5; i >= 0; i--) {
    frame[o + i] = mac % 256;
    mac = Math.floor(mac / 256);
  }
}

function writeU16(frame: Uint8Array, o: number, v: number): void {
  frame[o] = (v >>> 8) & 0xff;
  frame[o + 1] = v & 0xff;
}

function writeU32(frame: Uint8Array, o: number, v: number): void {
  frame[o] = (v >>> 24) & 0xff;
  frame[o + 1] = (v >>> 16) & 0xff;
  frame[o + 2] = (v >>> 8) & 0xff;
  frame[o + 3] = v & 0xff;
}
