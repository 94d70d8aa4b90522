/** `qubes-air-agent keygen`: creates the device's static key file (never overwrites one). */
import { join } from "node:path";
import { EXIT } from "../../core/cli/exit-codes.ts";
import { formatPublicKey } from "../../core/session/key-text.ts";
import { generateKeyFile } from "../../platform/key-file.ts";
import { loadConfig } from "../config.ts";
import { type Command, parse } from "./cli.ts";

export const keygenCommand: Command = {
  name: "keygen",
  summary: "create the device's static key",
  help: `Usage: qubes-air-agent keygen [--out PATH | --config PATH]

Creates a new static X25519 key file (mode 0600) and prints its public key (qa-pub:...).
An existing file is never replaced. The daemon also creates the key on its first start.

Options:
  --out PATH      where to write it (default: device.key in the configured stateDir,
                  /var/lib/qubes-air/device.key without a config)
  --config PATH   take stateDir from this configuration file

Examples:
  qubes-air-agent keygen
  qubes-air-agent keygen --out /tmp/test-device.key`,
  async run(args, ctx) {
    const { values } = parse("keygen", args, { out: { type: "string" }, config: { type: "string" } });
    let out = typeof values.out === "string" ? values.out : null;
    if (!out && typeof values.config === "string")
      out = join((await loadConfig(values.config)).stateDir, "device.key");
    out ??= "/var/lib/qubes-air/device.key";
    const pair = await generateKeyFile(out);
    ctx.err(`qubes-air-agent: created ${out}\n`);
    ctx.out(`${formatPublicKey(pair.publicKey)}\n`);
    return EXIT.OK;
  },
};
