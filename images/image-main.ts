/**
 * `qubes-air image build|cloud`: the device image builder and the cloud-init generator
 * (images/image-build.ts, images/cloud.ts) as one CLI-kit command with two subcommands, each
 * with its own --help; the host CLI lists it, and `bun images/image-main.ts build ...` runs it
 * alone. Ctrl-C or SIGTERM aborts the build, which cleans up and exits 130 (EXIT.INTERRUPTED).
 * Must never: leave its signal handlers installed after the command returned.
 */
import type { CliContext, Command } from "../platform/cli/command.ts";
import { runCommand } from "../platform/cli/dispatch.ts";
import { processContext } from "../platform/cli/process.ts";
import { BUILD_HELP } from "./build-options.ts";
import { CLOUD_HELP, imageCloudCommand } from "./cloud.ts";
import type { ImageIO } from "./common.ts";
import { imageBuildCommand } from "./image-build.ts";

/** The command's output through the context; the process's Ctrl-C and SIGTERM abort the signal. */
export function processImageIO(
  ctx: CliContext,
  hooks: Pick<ImageIO, "enrol"> = {},
): { io: ImageIO; dispose: () => void } {
  const ac = new AbortController();
  const stop = () => {
    if (!ac.signal.aborted) ctx.err("\nstopping; removing the unfinished image...\n");
    ac.abort();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const io: ImageIO = {
    out: (t) => ctx.out(t),
    err: (t) => ctx.err(t),
    errIsTTY: process.stderr.isTTY === true,
    env: ctx.env,
    signal: ac.signal,
    ...hooks,
  };
  return {
    io,
    dispose: () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    },
  };
}

function withImageIO(
  run: (argv: readonly string[], io: ImageIO) => Promise<number>,
  hooks: Pick<ImageIO, "enrol">,
) {
  return async (args: string[], ctx: CliContext): Promise<number> => {
    const { io, dispose } = processImageIO(ctx, hooks);
    try {
      return await run(args, io);
    } finally {
      dispose();
    }
  };
}

/** The command; the host CLI passes `enrol` so images built in sys-remote are enrolled there. */
export const imageCommandWith = (hooks: Pick<ImageIO, "enrol">): Command => ({
  name: "image",
  summary: "build a flashable Pi/Armory image, or cloud-init for a cloud VM",
  help: `Usage: qubes-air image build --board BOARD --base RAW --out IMG [options]
       qubes-air image cloud --name NAME (--agent-url URL | --embed-agent) [options]

build   writes a new image from the upstream Raspberry Pi OS Lite (64-bit) or USB armory
        Debian image with the agent, its config, a one-time pairing token and the USB gadget.
        Needs no root. Prints the token (and a QR code) and the "qubes-air pair" command.
cloud   writes cloud-init user-data that installs the x64 agent on a cloud VM with its token,
        for the TCP zone, and OpenTofu/Terraform modules (Proxmox VE, AWS, Google Cloud,
        Hetzner) that start the VM with it behind a firewall admitting only sys-remote.

Examples:
  qubes-air image build --board pi4 --base 2025-05-13-raspios-bookworm-arm64-lite.img \\
      --sha256 HEX --name pi-gpg --out pi-gpg.img
  qubes-air image build --board armory-mk2 --base usbarmory-mark-two-debian.raw --name armory --out armory.img
  qubes-air image cloud --name build1 --embed-agent --out build1/

Run "qubes-air image build --help" or "qubes-air image cloud --help" for every option.`,
  subcommands: [
    {
      name: "build",
      summary: "write a flashable image for a Raspberry Pi or a USB armory",
      help: BUILD_HELP,
      run: withImageIO(imageBuildCommand, hooks),
    },
    {
      name: "cloud",
      summary: "write cloud-init user-data for a cloud VM",
      help: CLOUD_HELP,
      run: withImageIO(imageCloudCommand, hooks),
    },
  ],
});

export const imageCommand: Command = imageCommandWith({});

/** `bun images/image-main.ts build|cloud ...`: the same command outside the host CLI. */
export function imageMain(argv: readonly string[], ctx: CliContext = processContext()): Promise<number> {
  return runCommand("qubes-air image", imageCommand, argv, ctx);
}

if (import.meta.main) {
  process.exitCode = await imageMain(process.argv.slice(2));
}
