// Values that go into QEMU's command line. QEMU parses `-opt key=value,key=value` itself:
// a comma inside a value starts a new key (",script=/tmp/x" would be option injection),
// and a bad -rtc base only fails once QEMU runs. Every value spliced into such a string is
// checked here first, so a bad one is an input error before anything starts.

import { InputError } from "../engine/errors.js";

/** Node names go into `-name` (and the guest's kernel command line): letters, digits and . _ - only. */
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** QEMU's -rtc base=: utc, localtime, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (a real date, 1970 on). */
export function isRtcBase(text: string): boolean {
  if (text === "utc" || text === "localtime") return true;
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2}))?$/.exec(text);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1).map((v) => Number(v ?? 0)) as [number, number, number, number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  const real_day = date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
  return real_day && year >= 1970 && hour < 24 && minute < 60 && second < 60;
}

export const RTC_BASE_EXPECTED = "expected utc, localtime, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS";

/** Why `name` cannot be a VM's name on QEMU's command line, or null. */
export function vmNameProblem(name: string): string | null {
  return NAME_PATTERN.test(name) ? null : "a VM's name may hold only letters, digits, '.', '_' and '-' (at most 64), since it goes into QEMU's option strings";
}

/** Throws InputError unless every value is safe inside a QEMU `key=value,...` option string. */
export function checkQemuValues(v: { name: string; mac: string; rtc_base: string; paths: readonly string[] }): void {
  const problem = vmNameProblem(v.name);
  if (problem !== null) throw new InputError(`node name ${JSON.stringify(v.name)}: ${problem}`);
  if (!MAC_PATTERN.test(v.mac)) throw new InputError(`${v.name}: MAC ${JSON.stringify(v.mac)} is not six hex pairs`);
  if (!isRtcBase(v.rtc_base)) throw new InputError(`rtc base ${JSON.stringify(v.rtc_base)}: ${RTC_BASE_EXPECTED}`);
  // Paths are the user's (the checkout, the image); a comma is what QEMU would misread.
  for (const p of v.paths) {
    if (/[,\n]/.test(p)) throw new InputError(`${p}: QEMU option values cannot contain commas or newlines`);
  }
}
