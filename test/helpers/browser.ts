// Headless Chromium for the viewer tests (playwright-core drives Debian's chromium; no
// browser download). A missing browser is a failure with a clear message, never a skip.

import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";
import { REPO_ROOT } from "./cli.js";

export const CHROMIUM_PATH = process.env.TAPSIM_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS_DIR = path.join(REPO_ROOT, "test-artifacts");

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`viewer tests need Chromium at ${CHROMIUM_PATH} (Debian package "chromium", installed by scripts/install_deps.sh; or set TAPSIM_CHROMIUM)`);
  }
  // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: ["--no-sandbox"] });
}

export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return path.join(ARTIFACTS_DIR, name);
}
