/**
 * `qubes-air-agent ssh-setup`: the command line of agent/services/ssh/keysetup.ts (the key is
 * made or imported on the device; nothing goes over the link).
 */

import { EXIT } from "../../core/cli/exit-codes.ts";
import { DEFAULT_CONFIG_PATH } from "../config.ts";
import { configuredDir, DEFAULT_SSH_DIR, parseSshSetupArgs, sshSetup } from "../services/ssh/keysetup.ts";
import type { Command } from "./cli.ts";
import { print } from "./cli.ts";

export const sshSetupCommand: Command = {
  name: "ssh-setup",
  summary: "create or import the SSH key split-SSH (qubes.SshAgent) serves",
  help: `Usage: qubes-air-agent ssh-setup (--generate | --import FILE) [--config PATH | --dir DIR]
                                   [--name NAME] [--comment TEXT] [--export FILE]
       qubes-air-agent ssh-setup [--config PATH | --dir DIR] [--export FILE]

Creates an ed25519 SSH key on the device, or imports a private key from a local file (one
without a passphrase). qubes.SshAgent lists these keys and signs with them, each signature
after a press on the device. Prints (or writes to --export) the public keys, one
authorized_keys line each; without --generate or --import it only prints them.
Nothing is sent over the link.

Options:
  --generate        create a new ed25519 key
  --import FILE     import a private key (OpenSSH format, no passphrase)
  --config PATH     the agent's configuration: keys go to <stateDir>/ssh/keys
                    (default ${DEFAULT_CONFIG_PATH}, when it exists)
  --dir DIR         the ssh directory instead (default ${DEFAULT_SSH_DIR} without a config)
  --name NAME       the key's file name (default id_ed25519, or the imported file's name)
  --comment TEXT    the new key's comment (default "qubes-air device key")
  --export FILE     write the public keys here instead of printing them

Examples:
  qubes-air-agent ssh-setup --generate --export /media/usb/device-ssh.pub
  qubes-air-agent ssh-setup --import /media/usb/id_ed25519
  qubes-air-agent ssh-setup`,
  async run(args) {
    const o = parseSshSetupArgs(args, await configuredDir(args));
    if (o === "help") {
      print(this.help);
      return EXIT.OK;
    }
    const text = await sshSetup(o);
    if (o.exportFile) process.stderr.write(`qubes-air-agent: public keys written to ${o.exportFile}\n`);
    else print(text);
    return EXIT.OK;
  },
};
