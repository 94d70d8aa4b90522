/**
 * The command line of `qubes-air image build` (strict, with the CLI kit's parser: unknown
 * options and bad values are UsageErrors that say what is expected), and its help text.
 */
import { UsageError } from "../core/cli/usage-error.ts";
import { isQubeName } from "../core/qrexec/names.ts";
import { BOARDS, type BoardId, type BoardProfile } from "../hw/boards.ts";
import { parseCommandLine } from "../platform/cli/parse.ts";

export const IMAGE_BOARDS: readonly BoardId[] = ["pi3", "pi4", "pi5", "zero2w", "armory-mk2"];

export const BUILD_HELP = `Usage: qubes-air image build --board BOARD --base RAW --out IMG [options]

Writes a NEW image IMG from the upstream image RAW (never modified) with the qubes-air agent,
its config, a fresh one-time pairing token, its systemd unit (enabled), the USB gadget (serial +
network) and first-boot settings. Needs no root: mtools, debugfs and sfdisk work on the file.
Prints the token, as text and as a QR code, and the "qubes-air pair" command for sys-remote.

Boards and base images:
  pi3 pi4 pi5 zero2w   Raspberry Pi OS Lite (64-bit), unpacked (xz -d)
  armory-mk2           the USB armory Debian base image (usbarmory-mark-two-*.raw), unpacked

Options:
  --board BOARD          one of ${IMAGE_BOARDS.join(", ")}
  --base RAW             the upstream raw image (read only)
  --out IMG              the image to write (refused if it exists, unless --force)
  --sha256 HEX           the published sha256 of RAW; checked while it is copied
  --name NAME            the device's qube name (its RemoteVM in dom0); default: the board
  --hostname HOST        default: from NAME
  --tcp ADDR:PORT        also listen on TCP, e.g. 10.0.0.1:7441 on the USB network (the address is
                         given to usb0), or 0.0.0.0:7441 on a Pi 3 (it has no USB device port)
  --no-serial            do not listen on the USB serial line /dev/ttyGS0 (needs --tcp)
  --agent FILE           the agent from "bun run build" (default: found in dist/)
  --node-debs DIR        armory-mk2: Debian armhf .debs of nodejs, libnode*, their libraries and
                         node-acorn, node-cjs-module-lexer, node-undici (default: apt-get download)
  --user NAME            Pi: the login user (default qubes)
  --password-hash HASH   Pi: its password, as from "openssl passwd -6"; without it the image's own
                         first-boot prompt asks (bookworm) or no user is made (trixie)
  --ssh-key FILE         key-only SSH with these public keys (off otherwise; on the armory the
                         image's SSH with its public default password is turned off)
  --pi5-kernel8          pi5: boot the 4K-page kernel (kernel8.img) instead of the 16K one
  --udev-rules FILE      where to write the udev rules for sys-remote (default IMG.udev.rules)
  --label LABEL          the RemoteVM's label when sys-remote creates it (default gray)
  --no-enrol             built in sys-remote: do not record a pending enrolment (see below)
  --enrol-hours N        the enrolment expires after N hours (default 168, at most 2160)
  --force                replace IMG if it exists
  --no-qr                do not print the QR code
  -h, --help             this text

Run in sys-remote (qubes-air image build), the build also records a pending enrolment with the
qubes-air daemon: the name, the token and the device's USB identity (or its USB network MAC and
--tcp address). When the device first appears, the daemon pairs with it by itself and creates
its RemoteVM in dom0; the token is then spent on both sides (docs/enrolment.md).

Examples:
  qubes-air image build --board pi4 --base 2025-05-13-raspios-bookworm-arm64-lite.img \\
      --sha256 62d025b9bc7ca0e1facfec74ae56ac13978b6745c58177f081d39fbb8041ed45 --out pi-gpg.img --name pi-gpg
  qubes-air image build --board armory-mk2 --base usbarmory-mark-two-usd-debian_trixie-base_image.raw \\
      --out armory.img --name armory-gpg --tcp 10.0.0.1:7441`;

export interface BuildOptions {
  readonly board: BoardProfile;
  readonly base: string;
  readonly out: string;
  readonly sha256: string | null;
  readonly name: string;
  readonly hostname: string;
  readonly tcp: { readonly text: string; readonly host: string; readonly port: number } | null;
  readonly serial: boolean;
  readonly agent: string | undefined;
  readonly nodeDebs: string | undefined;
  readonly user: string | undefined;
  readonly passwordHash: string | null;
  readonly sshKeyFile: string | undefined;
  readonly pi5Kernel8: boolean;
  readonly udevRules: string | undefined;
  readonly force: boolean;
  readonly qr: boolean;
  readonly label: string;
  /** null: no enrolment (--no-enrol); else its lifetime. */
  readonly enrolSeconds: number | null;
}

export const IMAGE_LABELS = ["red", "orange", "yellow", "green", "gray", "blue", "purple", "black"];

export function hostnameFrom(name: string): string {
  const h = name
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/^-+|-+$/g, "");
  return h === "" ? "qubes-air" : h.slice(0, 63);
}

export function parseTcp(text: string): { text: string; host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9A-Za-z.-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535)
    throw new UsageError(`--tcp must be ADDR:PORT (e.g. 10.0.0.1:7441), not "${text}"`);
  return { text, host: (m[1] ?? m[2])!, port };
}

export function parseBuildOptions(argv: readonly string[]): BuildOptions | "help" {
  const v: Record<string, string | boolean | undefined> = parseCommandLine(
    argv,
    {
      board: { type: "string" },
      base: { type: "string" },
      out: { type: "string" },
      sha256: { type: "string" },
      name: { type: "string" },
      hostname: { type: "string" },
      tcp: { type: "string" },
      "no-serial": { type: "boolean" },
      agent: { type: "string" },
      "node-debs": { type: "string" },
      user: { type: "string" },
      "password-hash": { type: "string" },
      "ssh-key": { type: "string" },
      "pi5-kernel8": { type: "boolean" },
      "udev-rules": { type: "string" },
      force: { type: "boolean" },
      "no-qr": { type: "boolean" },
      label: { type: "string" },
      "no-enrol": { type: "boolean" },
      "enrol-hours": { type: "string" },
    },
    { positionals: false },
  ).values;
  if (v.help) return "help";
  const str = (k: string) => (typeof v[k] === "string" ? (v[k] as string) : undefined);
  const need = (k: string): string => {
    const s = str(k);
    if (s === undefined) throw new UsageError(`--${k} is required`);
    return s;
  };
  const boardId = need("board");
  if (!(IMAGE_BOARDS as readonly string[]).includes(boardId)) {
    throw new UsageError(`--board must be one of ${IMAGE_BOARDS.join(", ")}, not "${boardId}"`);
  }
  const board = BOARDS[boardId as BoardId];
  const sha = str("sha256")?.toLowerCase() ?? null;
  if (sha !== null && !/^[0-9a-f]{64}$/.test(sha)) throw new UsageError("--sha256 must be 64 hex digits");
  const name = str("name") ?? board.id;
  if (!isQubeName(name)) {
    throw new UsageError("--name must be a qube name: a letter, then letters, digits, _ . - (at most 31)");
  }
  const hostname = str("hostname") ?? hostnameFrom(name);
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(hostname))
    throw new UsageError("--hostname must be a host name");
  const tcp = str("tcp") === undefined ? null : parseTcp(str("tcp")!);
  const serial = v["no-serial"] !== true && board.usbGadget !== null;
  if (!serial && !tcp) {
    throw new UsageError(
      board.usbGadget
        ? "--no-serial needs --tcp ADDR:PORT, or the agent would listen nowhere"
        : `${board.name} has no USB device port: give --tcp 0.0.0.0:7441 (it is reached over Ethernet)`,
    );
  }
  const hash = str("password-hash") ?? null;
  if (hash !== null && !/^\$[0-9a-z]{1,2}\$[./A-Za-z0-9$=,-]{8,}$/.test(hash)) {
    throw new UsageError('--password-hash must be a crypt(3) hash such as the output of "openssl passwd -6"');
  }
  const user = str("user");
  if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(user))
    throw new UsageError("--user must be a user name");
  if (board.id !== "pi5" && v["pi5-kernel8"]) throw new UsageError("--pi5-kernel8 is for --board pi5 only");
  const label = str("label") ?? "gray";
  if (!IMAGE_LABELS.includes(label))
    throw new UsageError(`--label must be one of ${IMAGE_LABELS.join(", ")}`);
  const hours = str("enrol-hours") ?? "168";
  if (!/^\d{1,4}$/.test(hours) || Number(hours) < 1 || Number(hours) > 2160)
    throw new UsageError("--enrol-hours must be 1 to 2160");
  return {
    label,
    enrolSeconds: v["no-enrol"] === true ? null : Number(hours) * 3600,
    board,
    base: need("base"),
    out: need("out"),
    sha256: sha,
    name,
    hostname,
    tcp,
    serial,
    agent: str("agent"),
    nodeDebs: str("node-debs"),
    user,
    passwordHash: hash,
    sshKeyFile: str("ssh-key"),
    pi5Kernel8: v["pi5-kernel8"] === true,
    udevRules: str("udev-rules"),
    force: v.force === true,
    qr: v["no-qr"] !== true,
  };
}
