// The guest's root password for `tapsim run` and `tapsim ssh/exec`, from --password, from
// --password-file, or from TAPSIM_GUEST_PASSWORD: the last two keep it out of `ps`.

import { readFileSync } from "node:fs";
import { fsErrorText, InputError } from "../engine/errors.js";

export const PASSWORD_ENV = "TAPSIM_GUEST_PASSWORD";

export interface PasswordFlags {
  password?: string;
  passwordFile?: string;
}

/** undefined: none given (the default guest then takes keys only). */
export function guestPassword(flags: PasswordFlags): string | undefined {
  if (flags.password !== undefined && flags.passwordFile !== undefined) throw new InputError("--password and --password-file: choose one");
  if (flags.password !== undefined) return flags.password;
  if (flags.passwordFile !== undefined) return readPasswordFile(flags.passwordFile);
  const env = process.env[PASSWORD_ENV];
  return env === undefined || env === "" ? undefined : env;
}

/** The file's first line (a trailing newline is not part of the password). */
function readPasswordFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new InputError(`--password-file ${file}: ${fsErrorText(err)}`);
  }
  const password = text.replace(/\r?\n$/, "");
  if (password === "" || password.includes("\n")) throw new InputError(`--password-file ${file}: expected the password on one line`);
  return password;
}
