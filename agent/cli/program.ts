/**
 * `qubes-air-agent`, the device agent's CLI (docs/agent.md): its commands, one file each, run by
 * the CLI kit (platform/cli/dispatch.ts: --help, usage errors, exit statuses from
 * core/cli/exit-codes.ts). `call` passes the remote service's own status through.
 * Runs under Bun and as a Node 18/20 bundle: nothing here touches `Bun.*`.
 */
import type { Program } from "../../platform/cli/command.ts";
import { gpgSetupCommand } from "../services/gpg/keysetup.ts";
import { callCommand } from "./call.ts";
import { keygenCommand } from "./keygen.ts";
import { pairTokenCommand } from "./pair-token.ts";
import { runCommand } from "./run.ts";
import { sshSetupCommand } from "./ssh-setup.ts";
import { versionCommand } from "./version.ts";

export const AGENT_PROGRAM: Program = {
  name: "qubes-air-agent",
  about: "The qubes-air device agent: makes this machine a qube for Qubes OS through sys-remote.",
  commands: [
    runCommand,
    keygenCommand,
    pairTokenCommand,
    callCommand,
    gpgSetupCommand,
    sshSetupCommand,
    versionCommand,
  ],
  examples: [
    "qubes-air-agent run --config /etc/qubes-air/agent.json",
    "qubes-air-agent call work my.Service",
    'qubes-air-agent gpg-setup --generate "Jane Doe <jane@example.org>" --export /media/usb/jane.asc',
    "qubes-air-agent ssh-setup --generate --export /media/usb/device-ssh.pub",
  ],
  version: versionCommand,
};
