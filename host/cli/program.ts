/**
 * `qubes-air`, the sys-remote CLI (docs/host.md): its commands, one file each in host/cli/, run
 * by the CLI kit (platform/cli/dispatch.ts: --help, usage errors, exit statuses from
 * core/cli/exit-codes.ts). `call` passes the remote's own status through.
 */
import { imageCommandWith } from "../../images/image-main.ts";
import type { Program } from "../../platform/cli/command.ts";
import { callCommand } from "./call.ts";
import { copyFromCommand } from "./copy-from.ts";
import { copyToCommand } from "./copy-to.ts";
import { daemonCommand } from "./daemon.ts";
import { enrolHook } from "./enrol-record.ts";
import { flashCommand } from "./flash.ts";
import { listCommand } from "./list.ts";
import { logsCommand } from "./logs.ts";
import { pairCommand } from "./pair.ts";
import { unlockCommand } from "./unlock.ts";
import { unpairCommand } from "./unpair.ts";
import { versionCommand } from "./version.ts";

export const HOST_PROGRAM: Program = {
  name: "qubes-air",
  about: "Remote qubes for Qubes OS: devices and cloud VMs as qubes, reached from sys-remote.",
  commands: [
    daemonCommand,
    pairCommand,
    unpairCommand,
    listCommand,
    callCommand,
    copyToCommand,
    copyFromCommand,
    logsCommand,
    unlockCommand,
    imageCommandWith({ enrol: enrolHook(process.env) }),
    flashCommand,
    versionCommand,
  ],
  version: versionCommand,
};
