// `tapsim image build|info`: the default guest image (guest/image.ts) from the command line.

import type { Command } from "commander";
import { buildDefaultImage, DEFAULT_PASSWORD, findDefaultImage, type BuildResult } from "../guest/image.js";

interface ImageFlags {
  password?: string;
  force?: boolean;
  json?: boolean;
}

export function registerImage(program: Command, setExit: (code: number) => void): void {
  const image = program.command("image").description("the default guest image (kernel + initramfs built from Debian packages)");
  image
    .command("build")
    .description("build the default guest image, or find it in the cache (.tapsim/images/)")
    .option("--password <password>", "root password of the guest (part of the cache key)", DEFAULT_PASSWORD)
    .option("--force", "rebuild even when the cache has it", false)
    .option("--json", "machine-readable output", false)
    .action(async (flags: ImageFlags) => {
      const result = await buildDefaultImage({ password: flags.password, force: flags.force === true });
      print(result, flags.json === true);
      setExit(0);
    });
  image
    .command("info")
    .description("show the cached default guest image (exit 1 when it is not built)")
    .option("--password <password>", "root password of the image to look up", DEFAULT_PASSWORD)
    .option("--json", "machine-readable output", false)
    .action((flags: ImageFlags) => {
      const result = findDefaultImage({ password: flags.password });
      if (result === null) {
        console.log("image: not built for these inputs (run `tapsim image build`)");
        setExit(1);
        return;
      }
      print(result, flags.json === true);
      setExit(0);
    });
}

function print(r: BuildResult, json: boolean): void {
  const m = r.manifest;
  if (json) {
    console.log(JSON.stringify({ ...r.image, ssh_password: undefined, rebuilt: r.rebuilt, manifest: m }, null, 2));
    return;
  }
  console.log(`image: ${r.image.dir} (${r.rebuilt ? "rebuilt" : "cached"})`);
  console.log(`identity: ${r.image.identity}`);
  console.log(`kernel: ${m.kernel.version} ${r.image.kernel_path} (${(m.kernel.bytes / 1e6).toFixed(1)} MB)`);
  console.log(`initrd: ${r.image.initrd_path} (${(m.initrd.bytes / 1e6).toFixed(1)} MB)`);
  console.log(`cmdline: ${m.kernel_cmdline_base}`);
  console.log(`ssh: user ${r.image.ssh_user}; host key ${m.host_key.fingerprint} (shared by every VM of this image)`);
  console.log(`packages: ${m.packages.map((p) => `${p.name}=${p.version}`).join(" ")}`);
}
