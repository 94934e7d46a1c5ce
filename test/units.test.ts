import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  UnitError, formatBandwidthBps, formatDurationNs, parseBandwidthBps, parseDurationNs, parseRatio, parseSizeBytes,
} from "../engine/units.js";

function throwsUnit(fn: () => unknown, message: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.instance(caught, UnitError, `expected a UnitError "${message}"`);
  assert.is((caught as Error).message, message);
}

test("durations are exact integer ns", () => {
  assert.is(parseDurationNs("0.1ms"), 100_000);
  assert.is(parseDurationNs("1.000000001s"), 1_000_000_001);
  assert.is(parseDurationNs("1.5us"), 1500);
  assert.is(parseDurationNs("0.3s"), 300_000_000); // 0.3 * 1e9 in floats is 299999999.99999994
  assert.is(parseDurationNs("2.675ms"), 2_675_000);
  assert.is(parseDurationNs(".5ms"), 500_000);
  assert.is(parseDurationNs("9007199254740991ns"), Number.MAX_SAFE_INTEGER);
});

test("every duration unit", () => {
  const cases: [string, number][] = [
    ["7ns", 7], ["7nsec", 7], ["7us", 7e3], ["7µs", 7e3], ["7μs", 7e3], ["7usec", 7e3],
    ["7ms", 7e6], ["7msec", 7e6], ["7s", 7e9], ["7sec", 7e9], ["7m", 420e9], ["7min", 420e9],
    ["7h", 7 * 3600e9], ["50 ms", 50e6], ["  50ms  ", 50e6], ["+5ms", 5e6], ["0", 0], ["0ms", 0], ["-0ms", 0],
  ];
  for (const [text, ns] of cases) assert.is(parseDurationNs(text), ns, text);
});

test("duration errors", () => {
  throwsUnit(() => parseDurationNs("5mz"), 'unknown duration unit "mz" (expected ns, us, ms, s, m, h)');
  throwsUnit(() => parseDurationNs("50"), 'missing unit in "50" (write e.g. 50ms)');
  throwsUnit(() => parseDurationNs("abc"), 'not a number: "abc"');
  throwsUnit(() => parseDurationNs(""), 'not a number: ""');
  throwsUnit(() => parseDurationNs("ms"), 'not a number: "ms"');
  throwsUnit(() => parseDurationNs("NaN"), 'not a number: "NaN"');
  throwsUnit(() => parseDurationNs("-5ms"), "negative value -5ms");
  throwsUnit(() => parseDurationNs("0.5ns"), "0.5ns is not a whole number of ns");
  throwsUnit(() => parseDurationNs("1.0000000001s"), "1.0000000001s is not a whole number of ns");
  throwsUnit(() => parseDurationNs("9007199254740992ns"), `9007199254740992ns is too large (more than ${Number.MAX_SAFE_INTEGER} ns)`);
  throwsUnit(() => parseDurationNs("5MS"), 'unknown duration unit "MS" (expected ns, us, ms, s, m, h)');
});

test("bandwidth units", () => {
  const cases: [string, number][] = [
    ["100bit", 100], ["100kbit", 100e3], ["100Kbit", 100e3], ["30Mbit", 30e6], ["30mbit", 30e6], ["30MBIT", 30e6],
    ["1gbit", 1e9], ["1Gbit", 1e9], ["2tbit", 2e12], ["1kibit", 1024], ["1mibit", 1024 ** 2], ["1gibit", 1024 ** 3],
    // bps family: BITS per second here (tc would read kbps as kilobytes)
    ["100bps", 100], ["100kbps", 100e3], ["30Mbps", 30e6], ["1Gbps", 1e9], ["1tbps", 1e12],
    ["100bit/s", 100], ["30Mbit/s", 30e6],
    ["100B/s", 800], ["1KB/s", 8e3], ["12.5MB/s", 100e6], ["1GB/s", 8e9], ["1KiB/s", 8192], ["1MiB/s", 8 * 1024 ** 2],
    ["1GiB/s", 8 * 1024 ** 3], ["1Mb/s", 1e6], ["1.5Mbit", 1.5e6], ["100 Mbit", 100e6], ["0", 0],
  ];
  for (const [text, bps] of cases) assert.is(parseBandwidthBps(text), bps, text);
});

test("bandwidth errors", () => {
  const expected = "bit, kbit, mbit, gbit, tbit, bps, kbps, Mbps, Gbps, B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s";
  throwsUnit(() => parseBandwidthBps("1mbits"), `unknown bandwidth unit "mbits" (expected ${expected})`);
  throwsUnit(() => parseBandwidthBps("100"), 'missing unit in "100" (write e.g. 100Mbit)');
  throwsUnit(() => parseBandwidthBps("fast"), 'not a number: "fast"');
  throwsUnit(() => parseBandwidthBps("-1Mbit"), "negative value -1Mbit");
  throwsUnit(() => parseBandwidthBps("0.5bit"), "0.5bit is not a whole number of bit/s");
  throwsUnit(() => parseBandwidthBps("10000000tbit"), `10000000tbit is too large (more than ${Number.MAX_SAFE_INTEGER} bit/s)`);
});

test("sizes", () => {
  const cases: [string, number][] = [
    ["1500B", 1500], ["64KB", 64e3], ["64kB", 64e3], ["1.5MB", 1.5e6], ["2GB", 2e9], ["1TB", 1e12],
    ["64KiB", 65536], ["1MiB", 1024 ** 2], ["1GiB", 1024 ** 3], ["1TiB", 1024 ** 4], ["1.5KiB", 1536], ["64 KiB", 65536], ["0", 0],
  ];
  for (const [text, bytes] of cases) assert.is(parseSizeBytes(text), bytes, text);
  const expected = "B, KB, MB, GB, KiB, MiB, GiB";
  throwsUnit(() => parseSizeBytes("64kb"), `unknown size unit "kb" (expected ${expected})`);
  throwsUnit(() => parseSizeBytes("64"), 'missing unit in "64" (write e.g. 64B)');
  throwsUnit(() => parseSizeBytes("big"), 'not a number: "big"');
  throwsUnit(() => parseSizeBytes("-1KB"), "negative value -1KB");
  throwsUnit(() => parseSizeBytes("0.5B"), "0.5B is not a whole number of bytes");
});

test("ratios", () => {
  assert.is(parseRatio("0.1%"), 0.001);
  assert.is(parseRatio("0.25"), 0.25);
  assert.is(parseRatio("1%"), 0.01);
  assert.is(parseRatio("100%"), 1);
  assert.is(parseRatio("0"), 0);
  assert.is(parseRatio("1"), 1);
  assert.is(parseRatio(0.3), 0.3);
  assert.is(parseRatio("0.3"), 0.3);
  assert.is(parseRatio(" 5 % "), 0.05);
  throwsUnit(() => parseRatio("101%"), "ratio 101% is above 100% (write e.g. 0.1% or 0.001)");
  throwsUnit(() => parseRatio("1.5"), "ratio 1.5 is above 1 (write e.g. 0.1% or 0.001)");
  throwsUnit(() => parseRatio(2), "ratio 2 is above 1 (write e.g. 0.1% or 0.001)");
  throwsUnit(() => parseRatio("-1%"), "negative value -1%");
  throwsUnit(() => parseRatio(-0.5), "negative value -0.5");
  throwsUnit(() => parseRatio(NaN), 'not a number: "NaN"');
  throwsUnit(() => parseRatio("lots"), 'not a number: "lots"');
  throwsUnit(() => parseRatio("5ms"), 'unknown ratio unit "ms" (expected % or none)');
});

test("formatDurationNs: shortest exact form, read back exactly", () => {
  const cases: [number, string][] = [
    [0, "0s"], [1, "1ns"], [1500, "1.5us"], [50_000_000, "50ms"], [100_000, "100us"], [1_000_000_000, "1s"],
    [60e9, "1m"], [90e9, "90s"], [3600e9, "1h"], [7200e9, "2h"], [999_999_999, "999999999ns"], [2_500_000_000, "2.5s"],
    [Number.MAX_SAFE_INTEGER, "9007199254740991ns"],
  ];
  for (const [ns, text] of cases) {
    assert.is(formatDurationNs(ns), text, String(ns));
    assert.is(parseDurationNs(text), ns, text);
  }
  // In floats, n / 1e9 for n just below a multiple of 1e9 can round up to the whole number.
  for (const ns of [8_999_999_999_999_999, 123_456_789_012, 100_000_001]) assert.is(parseDurationNs(formatDurationNs(ns)), ns);
  assert.throws(() => formatDurationNs(-1), RangeError);
  assert.throws(() => formatDurationNs(1.5), RangeError);
});

test("formatBandwidthBps", () => {
  const cases: [number, string][] = [[30e6, "30Mbit"], [1e9, "1Gbit"], [1.5e6, "1.5Mbit"], [100e3, "100Kbit"], [1234, "1234bit"], [0, "0bit"]];
  for (const [bps, text] of cases) {
    assert.is(formatBandwidthBps(bps), text);
    assert.is(parseBandwidthBps(text), bps);
  }
  assert.throws(() => formatBandwidthBps(-5), RangeError);
});

test.run();
