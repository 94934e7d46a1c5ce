// Decodes an Ethernet frame into tcpdump-like one-liners and per-layer fields: Ethernet II,
// ARP, IPv4, IPv6, ICMP, ICMPv6, TCP, UDP. Browser-safe on purpose (no node: imports, no
// Buffer): the HTML viewer inlines this module. Never throws: a truncated or malformed
// frame decodes as far as it goes and the summary says what is wrong.

export interface DecodedLayer {
  name: string;
  fields: Array<[string, string]>;
}

export interface DecodedFrame {
  /** tcpdump-like one-liner. */
  summary: string;
  /** Most specific protocol: "arp" | "ipv4" | "ipv6" | "icmp" | "icmp6" | "tcp" | "udp" | "ethernet" | "malformed". */
  protocol: string;
  src_mac: string;
  dst_mac: string;
  ethertype: number;
  src_ip?: string;
  dst_ip?: string;
  ip_proto?: number;
  src_port?: number;
  dst_port?: number;
  /** Start of the L4 payload, or of whatever could not be decoded. */
  payload_offset: number;
  layers: DecodedLayer[];
}

const ETH_BYTES = 14;
const ICMP_TYPES: Record<number, string> = { 0: "echo reply", 3: "unreachable", 5: "redirect", 8: "echo request", 11: "time exceeded" };
const ICMP6_TYPES: Record<number, string> = { 1: "destination unreachable", 3: "time exceeded", 128: "echo request", 129: "echo reply", 133: "router solicitation", 134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement", 143: "multicast listener report v2" };
const TCP_FLAGS: Array<[number, string]> = [[0x02, "S"], [0x01, "F"], [0x04, "R"], [0x08, "P"], [0x20, "U"], [0x40, "E"], [0x80, "W"]];

const u16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number) => (b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!)) >>> 0;
const hex2 = (n: number) => n.toString(16).padStart(2, "0");

export function formatMacBytes(b: Uint8Array, o: number): string {
  return Array.from(b.subarray(o, o + 6), hex2).join(":");
}

function ipv4(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function ipv6(b: Uint8Array, o: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(u16(b, o + i).toString(16));
  // Collapse the longest run of zero groups (RFC 5952), enough for readable one-liners.
  const text = groups.join(":");
  const m = text.match(/(?:^|:)0(?::0)+(?::|$)/g);
  if (!m) return text;
  const longest = m.reduce((a, c) => (c.length > a.length ? c : a));
  return text.replace(longest, "::");
}

export function decodeFrame(bytes: Uint8Array): DecodedFrame {
  if (bytes.length < ETH_BYTES) {
    return { summary: `Ethernet truncated: ${bytes.length} of ${ETH_BYTES} header bytes`, protocol: "malformed", src_mac: "", dst_mac: "", ethertype: 0, payload_offset: 0, layers: [] };
  }
  const ethertype = u16(bytes, 12);
  const d: DecodedFrame = {
    summary: "",
    protocol: "ethernet",
    src_mac: formatMacBytes(bytes, 6),
    dst_mac: formatMacBytes(bytes, 0),
    ethertype,
    payload_offset: ETH_BYTES,
    layers: [],
  };
  d.layers.push({ name: "Ethernet II", fields: [["destination", d.dst_mac], ["source", d.src_mac], ["type", `0x${ethertype.toString(16).padStart(4, "0")}`], ["length", String(bytes.length)]] });
  if (ethertype === 0x0806) decodeArp(bytes, d);
  else if (ethertype === 0x0800) decodeIpv4(bytes, d);
  else if (ethertype === 0x86dd) decodeIpv6(bytes, d);
  else d.summary = `${d.src_mac} > ${d.dst_mac}, ethertype 0x${ethertype.toString(16).padStart(4, "0")}, length ${bytes.length}`;
  return d;
}

function decodeArp(b: Uint8Array, d: DecodedFrame): void {
  const o = ETH_BYTES;
  if (b.length < o + 28) return malformed(d, `ARP truncated: ${b.length - o} of 28 bytes`);
  const op = u16(b, o + 6);
  const sender_ip = ipv4(b, o + 14);
  const target_ip = ipv4(b, o + 24);
  const sender_mac = formatMacBytes(b, o + 8);
  d.protocol = "arp";
  d.src_ip = sender_ip;
  d.dst_ip = target_ip;
  d.payload_offset = o + 28;
  d.layers.push({ name: "ARP", fields: [["operation", op === 1 ? "request (1)" : op === 2 ? "reply (2)" : String(op)], ["sender MAC", sender_mac], ["sender IP", sender_ip], ["target MAC", formatMacBytes(b, o + 18)], ["target IP", target_ip]] });
  d.summary = op === 1 ? `ARP, Request who-has ${target_ip} tell ${sender_ip}, length ${b.length - o}` : op === 2 ? `ARP, Reply ${sender_ip} is-at ${sender_mac}, length ${b.length - o}` : `ARP, operation ${op}, length ${b.length - o}`;
}

function decodeIpv4(b: Uint8Array, d: DecodedFrame): void {
  const o = ETH_BYTES;
  if (b.length < o + 20) return malformed(d, `IPv4 truncated: ${b.length - o} of 20 header bytes`);
  const ihl_bytes = (b[o]! & 0x0f) * 4;
  const version = b[o]! >> 4;
  if (version !== 4 || ihl_bytes < 20) return malformed(d, `IPv4 header malformed (version ${version}, header ${ihl_bytes} bytes)`);
  if (b.length < o + ihl_bytes) return malformed(d, `IPv4 truncated: ${b.length - o} of ${ihl_bytes} header bytes`);
  const total = u16(b, o + 2);
  const frag = u16(b, o + 6);
  const proto = b[o + 9]!;
  d.protocol = "ipv4";
  d.src_ip = ipv4(b, o + 12);
  d.dst_ip = ipv4(b, o + 16);
  d.ip_proto = proto;
  d.payload_offset = o + ihl_bytes;
  const fragment = (frag & 0x3fff) !== 0 ? `, fragment offset ${(frag & 0x1fff) * 8}${frag & 0x2000 ? " (more)" : ""}` : "";
  d.layers.push({ name: "IPv4", fields: [["source", d.src_ip], ["destination", d.dst_ip], ["protocol", String(proto)], ["ttl", String(b[o + 8])], ["id", `0x${u16(b, o + 4).toString(16)}`], ["total length", String(total)], ["header length", String(ihl_bytes)], ["flags", `${frag & 0x4000 ? "DF " : ""}${frag & 0x2000 ? "MF" : ""}`.trim() || "none"]] });
  const end = Math.min(b.length, o + Math.max(total, ihl_bytes));
  if ((frag & 0x1fff) !== 0) {
    d.summary = `${d.src_ip} > ${d.dst_ip}: ip-proto-${proto}${fragment}, length ${total}`;
    return;
  }
  decodeL4(b, d, d.payload_offset, end, proto, fragment);
}

function decodeIpv6(b: Uint8Array, d: DecodedFrame): void {
  const o = ETH_BYTES;
  if (b.length < o + 40) return malformed(d, `IPv6 truncated: ${b.length - o} of 40 header bytes`);
  const next = b[o + 6]!;
  const payload = u16(b, o + 4);
  d.protocol = "ipv6";
  d.src_ip = ipv6(b, o + 8);
  d.dst_ip = ipv6(b, o + 24);
  d.ip_proto = next;
  d.payload_offset = o + 40;
  d.layers.push({ name: "IPv6", fields: [["source", d.src_ip], ["destination", d.dst_ip], ["next header", String(next)], ["hop limit", String(b[o + 7])], ["payload length", String(payload)]] });
  const ext = next === 0 || next === 43 || next === 44 || next === 60 ? " (extension headers not decoded)" : "";
  decodeL4(b, d, d.payload_offset, Math.min(b.length, o + 40 + payload), ext ? -1 : next, ext);
}

function decodeL4(b: Uint8Array, d: DecodedFrame, o: number, end: number, proto: number, note: string): void {
  const src = d.src_ip!;
  const dst = d.dst_ip!;
  const len = Math.max(0, end - o);
  if (proto === 17) {
    if (len < 8) return malformed(d, `${src} > ${dst}: UDP truncated: ${len} of 8 header bytes`);
    setPorts(d, u16(b, o), u16(b, o + 2), o + 8, "udp");
    d.layers.push({ name: "UDP", fields: [["source port", String(d.src_port)], ["destination port", String(d.dst_port)], ["length", String(u16(b, o + 4))], ["checksum", `0x${u16(b, o + 6).toString(16)}`]] });
    d.summary = `${src}.${d.src_port} > ${dst}.${d.dst_port}: UDP, length ${u16(b, o + 4) - 8}${note}`;
  } else if (proto === 6) {
    decodeTcp(b, d, o, end, note);
  } else if (proto === 1 || proto === 58) {
    decodeIcmp(b, d, o, len, proto === 58, note);
  } else {
    d.summary = `${src} > ${dst}: ${proto < 0 ? "IPv6" : `ip-proto-${proto}`}, length ${len}${note}`;
  }
}

function decodeTcp(b: Uint8Array, d: DecodedFrame, o: number, end: number, note: string): void {
  const len = end - o;
  if (len < 20) return malformed(d, `${d.src_ip} > ${d.dst_ip}: TCP truncated: ${len} of 20 header bytes`);
  const header_bytes = (b[o + 12]! >> 4) * 4;
  const flags = b[o + 13]!;
  const flag_text = TCP_FLAGS.filter(([bit]) => flags & bit).map(([, c]) => c).join("") + (flags & 0x10 ? "." : "");
  setPorts(d, u16(b, o), u16(b, o + 2), o + Math.min(Math.max(header_bytes, 20), len), "tcp");
  const seq = u32(b, o + 4);
  const ack = u32(b, o + 8);
  const payload = Math.max(0, len - header_bytes);
  d.layers.push({ name: "TCP", fields: [["source port", String(d.src_port)], ["destination port", String(d.dst_port)], ["seq", String(seq)], ["ack", String(ack)], ["flags", `[${flag_text}]`], ["window", String(u16(b, o + 14))], ["header length", String(header_bytes)], ["options bytes", String(Math.max(0, header_bytes - 20))]] });
  d.summary = `${d.src_ip}.${d.src_port} > ${d.dst_ip}.${d.dst_port}: Flags [${flag_text}], seq ${seq}${flags & 0x10 ? `, ack ${ack}` : ""}, win ${u16(b, o + 14)}, length ${payload}${note}`;
}

function decodeIcmp(b: Uint8Array, d: DecodedFrame, o: number, len: number, v6: boolean, note: string): void {
  const name = v6 ? "ICMP6" : "ICMP";
  if (len < 4) return malformed(d, `${d.src_ip} > ${d.dst_ip}: ${name} truncated: ${len} of 4 header bytes`);
  const type = b[o]!;
  const code = b[o + 1]!;
  const type_text = (v6 ? ICMP6_TYPES : ICMP_TYPES)[type] ?? `type ${type}`;
  d.protocol = v6 ? "icmp6" : "icmp";
  d.payload_offset = o + Math.min(8, len);
  const fields: Array<[string, string]> = [["type", `${type} (${type_text})`], ["code", String(code)], ["checksum", `0x${u16(b, o + 2).toString(16)}`]];
  const echo = v6 ? type === 128 || type === 129 : type === 0 || type === 8;
  let detail = "";
  if (echo && len >= 8) {
    fields.push(["id", String(u16(b, o + 4))], ["seq", String(u16(b, o + 6))]);
    detail = `, id ${u16(b, o + 4)}, seq ${u16(b, o + 6)}`;
  }
  d.layers.push({ name, fields });
  d.summary = `${d.src_ip} > ${d.dst_ip}: ${name} ${type_text}${detail}, length ${len}${note}`;
}

function setPorts(d: DecodedFrame, src: number, dst: number, payload_offset: number, protocol: string): void {
  d.src_port = src;
  d.dst_port = dst;
  d.payload_offset = payload_offset;
  d.protocol = protocol;
}

function malformed(d: DecodedFrame, why: string): void {
  d.protocol = "malformed";
  d.summary = why;
}

/** xxd-like: offset, 16 hex bytes, ASCII; at most `bytes_max` bytes, then a note of the rest. */
export function hexDump(bytes: Uint8Array, bytes_max = 4096): string {
  const shown = bytes.subarray(0, Math.max(0, bytes_max));
  const lines: string[] = [];
  for (let off = 0; off < shown.length; off += 16) {
    const row = shown.subarray(off, off + 16);
    const hex = Array.from(row, hex2).join(" ").padEnd(47);
    const ascii = Array.from(row, (c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ".")).join("");
    lines.push(`${off.toString(16).padStart(4, "0")}  ${hex}  ${ascii}`);
  }
  if (bytes.length > shown.length) lines.push(`... ${bytes.length - shown.length} more bytes`);
  return lines.join("\n");
}
