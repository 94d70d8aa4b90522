/**
 * What `qubes-air image build` and `image cloud` share: the I/O they are given, the error that
 * ends a command with a message saying how to fix it, external tools (run without a shell, with
 * the Debian package to install when one is missing), and small byte/size helpers.
 * Nothing here needs root: every tool is run on regular files the user owns.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

export interface ImageIO {
  out(text: string): void;
  err(text: string): void;
  /** Progress is redrawn in place when stderr is a terminal. */
  errIsTTY: boolean;
  env?: Readonly<Record<string, string | undefined>>;
  /** Aborted on Ctrl-C: the build stops, removes IMG.partial and exits 130. */
  signal?: AbortSignal;
  /**
   * Records a pending enrolment in sys-remote (the host CLI gives this: its daemon's socket), so
   * the device is paired by itself when it appears. Resolves with one line for the user: what
   * was recorded, or why not (the printed pair command works either way).
   */
  enrol?: (e: EnrolmentRequest) => Promise<string>;
}

/** What `image build|cloud` asks sys-remote to expect (host/daemon/enrolments.ts checks it). */
export interface EnrolmentRequest {
  readonly name: string;
  readonly zone: string;
  readonly label: string;
  /** 64 hex digits: the one-time token written into the image. */
  readonly token: string;
  readonly identity:
    | { readonly usb: { readonly vendor: string; readonly product: string; readonly serial: string } }
    | { readonly mac: string; readonly tcp: string }
    | { readonly tcp: string };
  readonly ttlSeconds: number;
}

/** An operator-facing failure: the message says what is wrong and how to fix it. */
export class ImageError extends Error {
  override readonly name = "ImageError";
  constructor(
    message: string,
    /** 1 failure, 2 usage, 130 interrupted. */
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new ImageError(message, 2);

/** Tool -> the Debian/Ubuntu package that has it. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  sfdisk: "fdisk",
  mcopy: "mtools",
  mtype: "mtools",
  mdir: "mtools",
  mmd: "mtools",
  debugfs: "e2fsprogs",
  e2fsck: "e2fsprogs",
  "dpkg-deb": "dpkg",
  "apt-get": "apt",
  "apt-cache": "apt",
};

/** The first executable `name` in PATH, then /usr/sbin and /sbin (e2fsprogs lives there; users often lack them in PATH). */
export function findTool(name: string, env: Readonly<Record<string, string | undefined>> = process.env) {
  const dirs = [...(env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

/** Paths of the tools, or one ImageError naming every missing one and the apt command. */
export function requireTools(
  names: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): Record<string, string> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const n of names) {
    const p = findTool(n, env);
    if (p) found[n] = p;
    else missing.push(n);
  }
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((m) => TOOL_PACKAGES[m] ?? m))];
    throw new ImageError(
      `missing tool${missing.length > 1 ? "s" : ""}: ${missing.join(", ")}. Install with: sudo apt-get install ${pkgs.join(" ")}` +
        " (Fedora: sudo dnf install util-linux mtools e2fsprogs)",
    );
  }
  return found;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
  status: number;
}

/** Runs a tool (no shell) and returns its output; throws ImageError when it fails to start or exits non-zero. */
export function run(
  tool: string,
  args: readonly string[],
  options: {
    input?: string | Uint8Array;
    env?: Record<string, string>;
    allowFail?: boolean;
    cwd?: string;
  } = {},
): RunResult {
  const r = spawnSync(tool, args as string[], {
    input: options.input,
    cwd: options.cwd,
    env: options.env ? { ...process.env, ...options.env } : process.env,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error) throw new ImageError(`cannot run ${tool}: ${(r.error as Error).message}`);
  const result = { stdout: r.stdout, stderr: r.stderr.toString("utf8"), status: r.status ?? 128 };
  if (result.status !== 0 && !options.allowFail) {
    const why = result.stderr.trim().split("\n").slice(-3).join("; ");
    throw new ImageError(`${tool.split("/").pop()} ${args[0] ?? ""} failed (exit ${result.status}): ${why}`);
  }
  return result;
}

export const MiB = 1024 * 1024;

export function formatBytes(n: number): string {
  if (n >= 1024 * MiB) return `${(n / (1024 * MiB)).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** A short, stable, human-readable elapsed time ("1.4 s"). */
export function elapsed(startMs: number, now = performance.now()): string {
  return `${((now - startMs) / 1000).toFixed(1)} s`;
}
