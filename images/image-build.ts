/**
 * `qubes-air image build`: a flashable image for a Raspberry Pi or a USB armory, made from the
 * upstream raw image without root and without mounting (images/build-options.ts has the options).
 * Steps: tools and agent found; base copied to IMG.partial while hashed (--sha256 checked); the
 * partition table read (sfdisk -J); the root filesystem edited with debugfs (agent, config,
 * token, units, gadget, first-boot bits); the Pi's FAT boot partition edited with mtools; then
 * checked (e2fsck -fn, bytes before the first partition unchanged: the armory's U-Boot) and
 * renamed to IMG. The host CLI calls imageBuildCommand(argv, io).
 * Must never: write to the base image, publish IMG before every check passed, or leave the token
 * readable by others (IMG is 0600; inside, the token is 0600 root in a 0700 directory).
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseConfig } from "../agent/config.ts";
import { udevRules } from "../hw/udev.ts";
import { type GadgetSpec, gadgetStrings } from "../hw/usb-gadget.ts";
import { findAgent } from "./artefacts.ts";
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
import { DEFAULT_POLICY } from "./default-policy.ts";
import { agentConfig, type DeviceSetup, devicePlan, hostnamePlan, PATHS } from "./device-files.ts";
import { Ext4Image } from "./ext4.ts";
import { FatImage } from "./fat.ts";
import { detectFirstBoot, parseOsRelease } from "./first-boot.ts";
import {
  BUILTIN_DIRS,
  downloadNodeDebs,
  extractNodeDebs,
  listDebs,
  type NodeTree,
  nodeFlagsFor,
  nodePlan,
} from "./node-runtime.ts";
import { armoryLayout, piLayout, readPartitionTable } from "./partitions.ts";
import { applyPlan, planBytes, type RootEntry, replacedBytes } from "./rootfs.ts";

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
  const work = mkdtempSync(join(tmpdir(), "qa-image-"));
  try {
    await build(o, io, partial, work);
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
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function build(o: BuildOptions, io: ImageIO, partial: string, work: string): Promise<void> {
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
      ...(armory
        ? ["dpkg-deb", ...(o.nodeDebs ? [] : ["apt-get", "apt-cache"])]
        : ["mtype", "mcopy", "mdir"]),
    ],
    env,
  );
  const agent = findAgent(armory ? "node" : "arm64", o.agent, env);
  const baseSize = checkPaths(o);
  const sshKeys = o.sshKeyFile ? parseSshKeys(readText(o.sshKeyFile, "--ssh-key"), o.sshKeyFile) : [];

  let nodeTree: NodeTree | null = null;
  if (armory) {
    const cache = join(
      env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"),
      "qubes-air",
      "node-armhf",
    );
    if (!o.nodeDebs) io.err(`      downloading Debian's armhf Node packages into ${cache}\n`);
    const debs = o.nodeDebs
      ? listDebs(o.nodeDebs)
      : downloadNodeDebs({ aptGet: tools["apt-get"]!, aptCache: tools["apt-cache"]! }, cache);
    nodeTree = extractNodeDebs(tools["dpkg-deb"]!, debs, join(work, "node"));
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

  let nodeEntries: RootEntry[] = [];
  if (nodeTree) {
    const present = new Set(BUILTIN_DIRS.filter((b) => root.stat(`/usr/share/nodejs/${b}`) !== null));
    nodeEntries = nodePlan(nodeTree, present);
  }
  const gadget = gadgetSpec(o);
  const setup: DeviceSetup = {
    board: o.board,
    name: o.name,
    listen: { ...(o.serial ? { tty: "/dev/ttyGS0" } : {}), ...(o.tcp ? { tcp: o.tcp.text } : {}) },
    token: randomBytes(32).toString("hex"),
    gadget,
    runtime: nodeTree
      ? { kind: "node", bundle: agent.path, node: nodeEntries, flags: nodeFlagsFor(nodeTree.version) }
      : { kind: "bun", binary: agent.path },
    policy: DEFAULT_POLICY,
    usbAddress: usbAddress(o, root, gadget !== null),
  };
  parseConfig(agentConfig(setup), PATHS.config, { HOME: "/root" }); // the agent must accept it

  step(4, "writing into the root filesystem");
  const notes: string[] = [];
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
  const need = planBytes(plan) + 16 * MiB;
  const free = root.freeBytes() + replacedBytes(root, plan);
  if (need > free) {
    throw new ImageError(
      `the root filesystem has ${formatBytes(free)} free but the agent needs ${formatBytes(need)}: ` +
        "use a base image with more free space in its root partition",
    );
  }
  const t4 = performance.now();
  io.err(`      ${plan.length} entries, ${formatBytes(need - 16 * MiB)} ...\n`);
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
      runtime: armory ? `on Debian's armhf Node ${nodeTree?.version}` : "Bun arm64 binary",
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
