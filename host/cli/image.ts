/**
 * `qubes-air image build|cloud`: the device image builder and the cloud-init generator
 * (images/image-build.ts, images/cloud.ts) in the CLI, with the process's terminal and Ctrl-C
 * handling (images/image-main.ts). Options and exit codes are the builders' own.
 */
import { imageMain } from "../../images/image-main.ts";
import type { Command } from "./common.ts";

export const imageCommand: Command = {
  name: "image",
  summary: "build a flashable Pi/Armory image, or cloud-init for a cloud VM",
  help: `Usage: qubes-air image build --board BOARD --base RAW --out IMG [options]
       qubes-air image cloud --name NAME (--agent-url URL | --embed-agent) [options]

build   writes a new image from the upstream Raspberry Pi OS Lite (64-bit) or USB armory
        Debian image with the agent, its config, a one-time pairing token and the USB gadget.
        Needs no root. Prints the token (and a QR code) and the "qubes-air pair" command.
cloud   writes cloud-init user-data (and an example Terraform file) that installs the x64
        agent on a cloud VM with its token, for the TCP zone.

Examples:
  qubes-air image build --board pi4 --base 2025-05-13-raspios-bookworm-arm64-lite.img \\
      --sha256 HEX --name pi-gpg --out pi-gpg.img
  qubes-air image build --board armory-mk2 --base usbarmory-mark-two-debian.raw --name armory --out armory.img
  qubes-air image cloud --name build1 --embed-agent --out build1/

Run "qubes-air image build --help" or "qubes-air image cloud --help" for every option.`,

  subcommands: ["build", "cloud"],
  run: (args) => imageMain(args),
};
