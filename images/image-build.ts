/**
 * `qubes-air image build`: a flashable image for a Raspberry Pi or a USB armory, made from the
 * upstream raw image without root and without mounting (images/build-options.ts has the options).
 * Steps: tools and agent found; base copied to IMG.partial while hashed (--sha256 checked); the
 * partition table read (sfdisk -J); the root filesystem edited with debugfs (the agent package
 * qubes-air-agent_V_ARCH.deb and the first-boot unit that installs it, the device's config and
 * token, gadget, first-boot bits: images/device-files.ts); the Pi's FAT boot partition edited with mtools; then
 * checked (e2fsck -fn, bytes before the first partition unchanged: the armory's U-Boot) and
 * renamed to IMG. The host CLI calls imageBuildCommand(argv, io).
 * Must never: write to the base image, publish IMG before every check passed, or leave the token
 * readable by others (IMG is 0600; inside, the token is 0600 root in a 0700 directory).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { parseConfig } from "../agent/config.ts";
import { udevRules } from "../hw/udev.ts";
import { type GadgetSpec, gadgetStrings } from "../hw/usb-gadget.ts";
import { findAgentPackage, installedBytes } from "./agent-package.ts";
import { armoryGadgetEdits, parseSshKeys, sshKeysPlan, sshOffPlan } from "./board-edits.ts";
import { BUILD_HELP, type BuildOptions, parseBuildOptions } from "./build-options.ts";
import { summaryText } from "./build-report.ts";
import { checkPaths, gadgetSpec, readText, usbAddress, writeBoot } from "./build-steps.ts";
import {
  type EnrolmentRequest,
  elapsed,
  formatBytes,
  ImageError,
  type ImageIO,
  MiB,
  requireTools,
  run,
} from "./common.ts";
import { copyAndHash, hashRange, Progress } from "./copy.ts";
import { agentConfig, type DeviceSetup, devicePlan, hostnamePlan, PATHS } from "./device-files.ts";
import { Ext4Image } from "./ext4.ts";
import { FatImage } from "./fat.ts";
import { detectFirstBoot, parseOsRelease } from "./first-boot.ts";
import { downloadNodeDebs, listDebs, nodeDebsVersion } from "./node-runtime.ts";
import { armoryLayout, piLayout, readPartitionTable } from "./partitions.ts";
import { applyPlan, planBytes, replacedBytes } from "./rootfs.ts";

/** Debian's release numbers by codename (an os-release may carry only the codename). */
const DEBIAN_RELEASES: Readonly<Record<string, string>> = {
  bullseye: "11",
  bookworm: "12",
  trixie: "13",
  forky: "14",
};

export async function imageBuildCommand(argv: readonly string[], io: ImageIO): Promise<number> {
  let o: BuildOptions | "help";
  try {
    o = parseBuildOptions(argv);
  } catch (e) {
    io.err(
      `qubes-air image build: ${(e as Error).message}\n\n${BUILD_HELP.split("\n\n")[0]}\nRun: qubes-air image build --help\n`,
    );
    return 2;
  }
  if (o === "help") {
    io.out(`${BUILD_HELP}\n`);
    return 0;
  }
  const partial = `${resolve(o.out)}.partial`;
  try {
    await build(o, io, partial);
    return 0;
  } catch (e) {
    rmSync(partial, { force: true });
    if (io.signal?.aborted) {
      io.err(`qubes-air image build: interrupted; ${o.out} was not written\n`);
      return 130;
    }
    if (e instanceof ImageError) {
      io.err(`qubes-air image build: ${e.message}\n`);
      return e.exitCode;
    }
    io.err(`qubes-air image build: internal error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

async function build(o: BuildOptions, io: ImageIO, partial: string): Promise<void> {
  const t0 = performance.now();
  const env = io.env ?? process.env;
  const armory = o.board.id === "armory-mk2";
  const step = (n: number, text: string) => {
    if (io.signal?.aborted) throw new ImageError("interrupted", 130);
    io.err(`[${n}/6] ${text}\n`);
  };
  step(1, "tools, agent and base image");
  const tools = requireTools(
    [
      "sfdisk",
      "debugfs",
      "dpkg-deb",
      ...(armory ? (o.nodeDebs ? [] : ["apt-get", "apt-cache"]) : ["mtype", "mcopy", "mdir"]),
    ],
    env,
  );
  const agent = findAgentPackage(armory ? "armhf" : "arm64", o.agent, tools["dpkg-deb"]!, env);
  const baseSize = checkPaths(o);
  const sshKeys = o.sshKeyFile ? parseSshKeys(readText(o.sshKeyFile, "--ssh-key"), o.sshKeyFile) : [];

  let nodeDebs: string[] = [];
  let nodeVersion = "";
  if (armory) {
    const cache = join(
      env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"),
      "qubes-air",
      "node-armhf",
    );
    if (!o.nodeDebs) io.err(`      downloading Debian's armhf Node packages into ${cache}\n`);
    nodeDebs = o.nodeDebs
      ? listDebs(o.nodeDebs)
      : downloadNodeDebs({ aptGet: tools["apt-get"]!, aptCache: tools["apt-cache"]! }, cache);
    nodeVersion = nodeDebsVersion(nodeDebs);
  }

  step(2, `copying ${o.base} (${formatBytes(baseSize)})${o.sha256 ? " and checking its sha256" : ""}`);
  rmSync(partial, { force: true });
  const progress = new Progress("copying", baseSize, io.err, io.errIsTTY);
  const sha = await copyAndHash(o.base, partial, (done) => progress.update(done), io.signal);
  if (o.sha256 && sha !== o.sha256) {
    throw new ImageError(
      `${o.base} has sha256 ${sha}, not the expected ${o.sha256}: a damaged or different download`,
    );
  }
  io.err(`      sha256 ${sha}${o.sha256 ? " (matches)" : " (not checked: give --sha256)"}\n`);

  step(3, "reading the partition table and the root filesystem");
  const table = readPartitionTable(tools.sfdisk!, partial, baseSize);
  const layout = armory
    ? { boot: null, ...armoryLayout(table, o.base) }
    : { ...piLayout(table, o.base), bootArea: 0 };
  const firstPart = Math.min(...table.partitions.map((p) => p.offset));
  const root = new Ext4Image(tools.debugfs!, partial, layout.root.offset);
  const osText = root.readFile("/etc/os-release")?.toString("utf8") ?? "";
  const os = parseOsRelease(osText);
  const release = `${os.PRETTY_NAME ?? os.NAME ?? "unknown system"}`;
  const fat = layout.boot
    ? new FatImage(
        { mtype: tools.mtype!, mcopy: tools.mcopy!, mdir: tools.mdir! },
        partial,
        layout.boot.offset,
      )
    : null;
  const firstBoot = fat
    ? detectFirstBoot(fat.list(), os, root.stat("/etc/cloud/cloud.cfg") !== null)
    : { kind: "none" as const, why: "hostname set in the root filesystem" };
  io.err(`      ${release}; first boot: ${firstBoot.kind} (${firstBoot.why})\n`);

  const gadget = gadgetSpec(o);
  const setup: DeviceSetup = {
    board: o.board,
    name: o.name,
    listen: { ...(o.serial ? { tty: "/dev/ttyGS0" } : {}), ...(o.tcp ? { tcp: o.tcp.text } : {}) },
    token: randomBytes(32).toString("hex"),
    gadget,
    agentDeb: { name: agent.name, file: agent.path },
    runtimeDebs: nodeDebs,
    usbAddress: usbAddress(o, root, gadget !== null),
  };
  parseConfig(agentConfig(setup), PATHS.config, { HOME: "/root" }); // the agent must accept it

  step(4, "writing into the root filesystem");
  const notes: string[] = [];
  const nodeRelease = /~deb(\d+)u/.exec(nodeVersion)?.[1];
  const imageRelease = os.VERSION_ID ?? DEBIAN_RELEASES[os.VERSION_CODENAME ?? ""];
  if (armory && nodeRelease && imageRelease && nodeRelease !== imageRelease) {
    notes.push(
      `the Node .debs are from Debian ${nodeRelease} but the image is Debian ${imageRelease}: first boot installs ` +
        "them with dpkg and may find their libraries in conflict; give --node-debs with the image's own release's packages",
    );
  }
  const plan = devicePlan(setup);
  if (firstBoot.kind !== "cloud-init") {
    plan.push(...hostnamePlan(o.hostname, root.readFile("/etc/hosts")?.toString("utf8") ?? null));
  }
  if (armory) plan.push(...armoryGadgetEdits(root.readFile("/etc/modules")?.toString("utf8") ?? null));
  if (sshKeys.length > 0) {
    const unit = ["/usr/lib/systemd/system/ssh.service", "/lib/systemd/system/ssh.service"].find((p) =>
      root.stat(p),
    );
    if (!unit) throw new ImageError("--ssh-key: the image has no openssh-server (no ssh.service)");
    const user = o.user ?? (armory ? "usbarmory" : "qubes");
    if (firstBoot.kind === "userconf" && !o.passwordHash) {
      throw new ImageError(
        "--ssh-key on a bookworm image needs --password-hash too: its user is made from userconf.txt",
      );
    }
    plan.push(...sshKeysPlan(user, sshKeys, unit));
  } else if (armory) {
    plan.push(...sshOffPlan());
    notes.push(
      "SSH is off (the armory image's default password is public); use --ssh-key to have key-only SSH",
    );
  }
  // The .debs stay in the image until first boot, when the package is unpacked beside them.
  // Raspberry Pi OS grows its root filesystem to the card before that; the armory image does not,
  // so there the unpacked size (the packages' Installed-Size) must fit now.
  const dpkgDeb = tools["dpkg-deb"]!;
  const unpacked = armory
    ? agent.installedBytes + nodeDebs.reduce((n, d) => n + installedBytes(dpkgDeb, d), 0)
    : 0;
  const need = planBytes(plan) + unpacked + 16 * MiB;
  const free = root.freeBytes() + replacedBytes(root, plan);
  if (need > free) {
    throw new ImageError(
      `the root filesystem has ${formatBytes(free)} free but the agent needs ${formatBytes(need)}: ` +
        "use a base image with more free space in its root partition",
    );
  }
  const t4 = performance.now();
  io.err(`      ${plan.length} entries, ${formatBytes(need - unpacked - 16 * MiB)} ...\n`);
  applyPlan(root, plan);
  io.err(`      done in ${elapsed(t4)}\n`);

  step(5, fat ? "writing the boot partition" : "no boot partition to change (U-Boot area kept as is)");
  if (fat) notes.push(...writeBoot(o, fat, firstBoot.kind, gadget !== null));
  if (o.board.id === "pi5")
    notes.push(
      "Pi 5: Bun on the 16K-page kernel is not yet verified on hardware; --pi5-kernel8 selects kernel8.img",
    );

  step(6, "checking the result");
  const e2fsck = requireTools(["e2fsck"], env).e2fsck!;
  const fsck = run(e2fsck, ["-fn", root.spec], { allowFail: true });
  if (fsck.status !== 0)
    throw new ImageError(`e2fsck finds the edited root filesystem damaged: ${fsck.stderr.trim()}`);
  if (hashRange(o.base, 0, firstPart) !== hashRange(partial, 0, firstPart)) {
    throw new ImageError(
      "the bytes before the first partition changed (boot loader area): refusing the result",
    );
  }
  io.err(
    `      root filesystem clean; the first ${formatBytes(firstPart)} (MBR${armory ? ", U-Boot" : ""}) unchanged\n`,
  );
  chmodSync(partial, 0o600);
  renameSync(partial, o.out);

  let udevFile: string | null = null;
  if (gadget) {
    udevFile = o.udevRules ?? `${o.out}.udev.rules`;
    writeFileSync(udevFile, udevRules([{ name: o.name, serial: gadget.serial }]), { mode: 0o644 });
  }
  const summary = {
    out: o.out,
    outSize: statSync(o.out).size,
    boardName: o.board.name,
    name: o.name,
    release,
    firstBoot: firstBoot.kind === "none" ? "none needed" : firstBoot.kind,
    agent: {
      file: agent.path.split("/").pop()!,
      size: agent.size,
      sha256: agent.sha256,
      runtime: armory
        ? `package ${agent.version} on Debian's armhf Node ${nodeVersion}, installed at first boot`
        : `package ${agent.version} (Bun arm64 binary), installed at first boot`,
    },
    listen: setup.listen,
    usb: gadget ? { serial: gadget.serial, hostMac: gadget.hostMac, devMac: gadget.devMac } : null,
    token: setup.token,
    udevRules: udevFile,
    notes,
    seconds: (performance.now() - t0) / 1000,
  };
  io.out(summaryText(summary, o.qr));
  if (o.enrolSeconds !== null && io.enrol) {
    const identity = enrolIdentity(o, gadget);
    io.out(
      identity
        ? `${await io.enrol({ name: o.name, zone: gadget ? "usb" : "lan", label: o.label, token: setup.token, identity, ttlSeconds: o.enrolSeconds })}\n`
        : "Not enrolled: sys-remote cannot know where the device will be (give --tcp with its address); pair it by hand\n",
    );
  }
}

/** What sys-remote will recognise the device by: its USB serial line, its USB network MAC, or a fixed address. */
function enrolIdentity(o: BuildOptions, gadget: GadgetSpec | null): EnrolmentRequest["identity"] | null {
  if (gadget && o.serial) return { usb: { ...usbStrings(o.board), serial: gadget.serial } };
  if (!o.tcp || /^(0\.0\.0\.0|::)$/.test(o.tcp.host)) return null;
  return gadget ? { mac: gadget.hostMac, tcp: o.tcp.text } : { tcp: o.tcp.text };
}

function usbStrings(board: BuildOptions["board"]): { vendor: string; product: string } {
  const s = gadgetStrings(board);
  return { vendor: s.manufacturer, product: s.product };
}
