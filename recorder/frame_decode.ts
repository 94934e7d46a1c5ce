// PLACEHOLDER, NOT A DECODER: stands in for branch debug's recorder/frame_decode.ts (same API) so
// that branch view builds and its tests run. Revert this commit before cherry-picking debug's.
export interface DecodedLayer { name: string; fields: Array<[string, string]> }
export interface DecodedFrame { summary: string; protocol: string; src_mac: string; dst_mac: string; ethertype: number; src_ip?: string; dst_ip?: string; ip_proto?: number; src_port?: number; dst_port?: number; payload_offset: number; layers: DecodedLayer[] }
export function decodeFrame(bytes: Uint8Array): DecodedFrame {
  return { summary: `placeholder ${bytes.length} bytes`, protocol: bytes.length > 23 && bytes[23] === 17 ? "udp" : "ethernet", src_mac: "", dst_mac: "", ethertype: 0, payload_offset: 0, layers: [{ name: "Placeholder", fields: [["length", String(bytes.length)]] }] };
}
export function hexDump(bytes: Uint8Array, bytes_max = 256): string {
  return Array.from(bytes.subarray(0, bytes_max), (b) => b.toString(16).padStart(2, "0")).join(" ");
}
