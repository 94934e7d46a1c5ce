// `tapsim export TRACE --pcap out.pcapng --perfetto out.json`: the trace for Wireshark/tshark
// and for ui.perfetto.dev / chrome://tracing. Each file appears complete or not at all; an
// incomplete trace is exported as far as it reads, with a warning on stderr.

import type { Command } from "commander";
import { InputError } from "../engine/errors.js";
import { exportPcapng } from "../recorder/export_pcapng.js";
import { exportPerfetto } from "../recorder/export_perfetto.js";
import { warnIfIncomplete } from "./incomplete.js";

interface ExportFlags {
  pcap?: string;
  pcapBothEnds: boolean;
  perfetto?: string;
}

export function registerExport(program: Command, setExit: (code: number) => void): void {
  program
    .command("export")
    .description("export a trace: pcapng (one interface per node, ns timestamps = RTC base + virtual time, in time order) and/or Perfetto JSON")
    .argument("<trace>", "trace file")
    .option("--pcap <file>", "write pcapng here (open with wireshark / tshark -r)")
    .option("--pcap-both-ends", "pcapng: each frame on its sender's interface when sent as well as on the receiver's when delivered (Wireshark then counts every TCP segment twice)", false)
    .option("--perfetto <file>", "write Chrome trace-event JSON here (ui.perfetto.dev, chrome://tracing)")
    .action((trace: string, flags: ExportFlags) => {
      if (flags.pcap === undefined && flags.perfetto === undefined) throw new InputError("tapsim export: give --pcap FILE and/or --perfetto FILE");
      warnIfIncomplete(trace);
      if (flags.pcapBothEnds && flags.pcap === undefined) throw new InputError("tapsim export: --pcap-both-ends needs --pcap FILE");
      if (flags.pcap !== undefined) {
        const s = exportPcapng(trace, flags.pcap, { both_ends: flags.pcapBothEnds });
        const layout = flags.pcapBothEnds ? "each frame at send and at delivery" : "each frame once, at delivery";
        const base = s.time_base_s === 0 ? "virtual time" : `${new Date(s.time_base_s * 1000).toISOString().replace(".000Z", "Z")} + virtual time`;
        console.log(`pcapng: ${flags.pcap}: ${s.packets} packets (${s.emitted} sent, ${s.delivered} delivered, ${s.dropped} dropped; ${layout}${s.mgmt > 0 ? `; ${s.mgmt} management frames on the <node>-mgmt interfaces` : ""}), timestamps ${base}`);
        if (s.late > 0) console.error(`tapsim: pcapng: ${s.late} packets came later than the reorder window and are out of time order`);
      }
      if (flags.perfetto !== undefined) {
        const s = exportPerfetto(trace, flags.perfetto);
        const guest = s.console_outputs + s.mgmt_frames > 0 ? `, ${s.console_outputs} console outputs, ${s.mgmt_frames} management frames` : "";
        const faults = s.faults + s.commands > 0 ? `, ${s.faults} faults, ${s.commands} command events` : "";
        console.log(`perfetto: ${flags.perfetto}: ${s.events} events (${s.slices} slices, ${s.flows} frame flows${guest}${faults})`);
      }
      setExit(0);
    });
}
