/**
 * The agent's configuration file (docs/agent.md "Configuration"): one JSON object, read strictly.
 * Unknown keys, wrong types and invalid values are ConfigError naming the file, the key and the
 * fix; defaults are filled in here so the rest of the agent sees one complete, checked Config.
 * Must never: accept a key it does not know (a typo must not silently fall back to a default).
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { ConfigError } from "../core/errors.ts";
import { isQubeName } from "../core/qrexec/names.ts";
import { FILECOPY_LIMITS } from "../core/qrexec/services.ts";
import { HANDSHAKE_MIN_INTERVAL_MS } from "../core/wire/limits.ts";
import { type ConfirmConfig, parseConfirm, parseConfirmTimes } from "./confirmation/config.ts";
import { exportDirProblem } from "./protected-paths.ts";

export type { ConfirmConfig } from "./confirmation/config.ts";

export const DEFAULT_CONFIG_PATH = "/etc/qubes-air/agent.json";
const CONFIG_MAX_BYTES = 64 * 1024;

export interface TcpAddress {
  readonly host: string;
  readonly port: number;
}

export interface Config {
  /** The file it came from, for messages. */
  readonly path: string;
  readonly name: string;
  readonly stateDir: string;
  readonly listen: { readonly tcp: TcpAddress | null; readonly tty: string | null };
  readonly serviceDirs: readonly string[];
  readonly policyDir: string;
  readonly incomingDir: string;
  /** The one directory qubesair.CopyFrom sends from (default <home>/QubesOutgoing). */
  readonly exportDir: string;
  readonly socket: string;
  readonly allowCodePairing: boolean;
  readonly confirm: ConfirmConfig;
  /** How long a confirmation waits for the user before it counts as a denial (1..120 s). */
  readonly confirmTimeoutSeconds: number;
  /** 0: every request asks; up to 60: an approval covers the same client+operation+key that long. */
  readonly approvalWindowSeconds: number;
  /** After an approval, how long a request from another client counts as a conflict (0..10 s). */
  readonly confirmConflictWindowSeconds: number;
  /** The GnuPG home the split-GPG services serve (default <stateDir>/gnupg). */
  readonly gnupgHome: string;
  /** The hash-chained audit log: always <stateDir>/audit.log. */
  readonly auditLog: string;
  readonly handshakeMinIntervalMs: number;
  /** qubes.Filecopy's limits per copy and the free space it never takes (FILECOPY_LIMITS). */
  readonly fileCopy: FileCopyConfig;
  /** The PIN lock of a sealed key (docs/key-lock.md); used only when gpg-setup --pin sealed one. */
  readonly keyLock: KeyLockConfig;
  /** The small display and the screen console (docs/hardware.md "Display"); null: neither. */
  readonly display: { readonly framebuffer: string | null; readonly console: string | null } | null;
}

export interface FileCopyConfig {
  readonly maxBytes: number;
  readonly maxFiles: number;
  readonly reserveBytes: number;
  readonly reservePercent: number;
  readonly reserveInodes: number;
}

export interface KeyLockConfig {
  /** Where the opened home lives while unlocked: must be on tmpfs/ramfs (checked at unlock). */
  readonly unlockedHome: string;
  /** Wrong PINs in a row that destroy the sealed key. */
  readonly maxAttempts: number;
  /** Lock after this long without a split-GPG connection. */
  readonly idleSeconds: number;
  /** Lock when no host has been connected for this long (the device was unplugged). */
  readonly unplugGraceSeconds: number;
}

export const KEY_LOCK_DEFAULTS: KeyLockConfig = {
  unlockedHome: "/run/qubes-air/gnupg-unlocked",
  maxAttempts: 5,
  idleSeconds: 900,
  unplugGraceSeconds: 60,
};

const KEYS = [
  "name",
  "stateDir",
  "listen",
  "serviceDirs",
  "policyDir",
  "incomingDir",
  "exportDir",
  "socket",
  "allowCodePairing",
  "confirm",
  "confirmTimeoutSeconds",
  "approvalWindowSeconds",
  "confirmConflictWindowSeconds",
  "gnupgHome",
  "handshakeMinIntervalMs",
  "fileCopy",
  "keyLock",
  "display",
] as const;

export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > CONFIG_MAX_BYTES)
      throw new ConfigError(`${path} is over ${CONFIG_MAX_BYTES} bytes (wrong file?)`);
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as { code?: string }).code;
    if (code === "ENOENT") {
      throw new ConfigError(
        `config file ${path} does not exist; create it (see docs/agent.md) or give another with --config PATH`,
      );
    }
    throw new ConfigError(`cannot read config file ${path} (${code ?? "not UTF-8 text"})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON (${(error as Error).message}); fix the syntax`);
  }
  return parseConfig(value, path);
}

export function parseConfig(value: unknown, path: string, env: NodeJS.ProcessEnv = process.env): Config {
  const fail = (key: string, what: string): never => {
    throw new ConfigError(`${path}: "${key}" ${what}`);
  };
  const o = object(value, () => fail("(top level)", "must be a JSON object"));
  unknownKeys(o, KEYS, path, "");
  const str = (key: string, v: unknown) =>
    typeof v === "string" && v !== "" ? v : fail(key, "must be a non-empty string");
  const absPath = (key: string, v: unknown) => {
    const s = str(key, v);
    return isAbsolute(s) ? s : fail(key, `must be an absolute path, not "${s}"`);
  };

  const name = str("name", o.name);
  if (!isQubeName(name)) {
    fail(
      "name",
      "must be this device's qube name as Qubes knows it: 1-31 characters [A-Za-z0-9_.-], starting with a letter",
    );
  }

  const listenObj = object(o.listen, () =>
    fail("listen", 'is required: an object with "tcp": "ADDR:PORT" and/or "tty": "/dev/ttyGS0"'),
  );
  unknownKeys(listenObj, ["tcp", "tty"], path, "listen.");
  const tcp = listenObj.tcp === undefined ? null : parseTcp(str("listen.tcp", listenObj.tcp), fail);
  const tty = listenObj.tty === undefined ? null : absPath("listen.tty", listenObj.tty);
  if (!tcp && !tty) fail("listen", 'needs at least one of "tcp" and "tty"');

  let serviceDirs: string[] = ["/usr/local/etc/qubes-rpc", "/etc/qubes-rpc"];
  if (o.serviceDirs !== undefined) {
    if (!Array.isArray(o.serviceDirs) || o.serviceDirs.length === 0) {
      fail("serviceDirs", "must be a non-empty array of absolute directory paths");
    }
    serviceDirs = (o.serviceDirs as unknown[]).map((d, i) => absPath(`serviceDirs[${i}]`, d));
  }

  const home = env.HOME || homedir();
  const allowCodePairing = o.allowCodePairing ?? false;
  if (typeof allowCodePairing !== "boolean") fail("allowCodePairing", "must be true or false");
  const interval = o.handshakeMinIntervalMs ?? HANDSHAKE_MIN_INTERVAL_MS;
  if (typeof interval !== "number" || !Number.isInteger(interval) || interval < 0 || interval > 3_600_000) {
    fail("handshakeMinIntervalMs", "must be a whole number of milliseconds between 0 and 3600000");
  }

  const stateDir = o.stateDir === undefined ? "/var/lib/qubes-air" : absPath("stateDir", o.stateDir);
  const unknownIn = (x: Record<string, unknown>, known: readonly string[], prefix: string) =>
    unknownKeys(x, known, path, prefix);
  const config: Config = {
    path,
    name,
    stateDir,
    listen: { tcp, tty },
    serviceDirs,
    policyDir: o.policyDir === undefined ? "/etc/qubes-air/policy.d" : absPath("policyDir", o.policyDir),
    incomingDir: o.incomingDir === undefined ? home : absPath("incomingDir", o.incomingDir),
    exportDir: o.exportDir === undefined ? join(home, "QubesOutgoing") : absPath("exportDir", o.exportDir),
    socket: o.socket === undefined ? "/run/qubes-air/agent.sock" : absPath("socket", o.socket),
    allowCodePairing: allowCodePairing as boolean,
    confirm: parseConfirm(o.confirm, fail, unknownIn),
    ...parseConfirmTimes(o, fail),
    gnupgHome: o.gnupgHome === undefined ? join(stateDir, "gnupg") : absPath("gnupgHome", o.gnupgHome),
    auditLog: join(stateDir, "audit.log"),
    handshakeMinIntervalMs: interval as number,
    fileCopy: parseFileCopy(o.fileCopy, fail, unknownIn),
    keyLock: parseKeyLock(o.keyLock, fail, unknownIn),
    display: parseDisplay(o.display, tty, fail, unknownIn),
  };
  // The agent's secrets are refused at copy time whatever this says; an exportDir that holds
  // them (or lies among them) is a mistake better reported now than as refusals later.
  const problem = exportDirProblem(config, env);
  if (problem) {
    const shown = o.exportDir === undefined ? `(default ${config.exportDir}) ` : "";
    fail(
      "exportDir",
      `${shown}${problem}; set it to a directory of its own that holds only what may be copied out`,
    );
  }
  return config;
}

function parseFileCopy(
  v: unknown,
  fail: (key: string, what: string) => never,
  unknownIn: (x: Record<string, unknown>, known: readonly string[], prefix: string) => void,
): FileCopyConfig {
  if (v === undefined) return FILECOPY_LIMITS;
  const o = object(v, () =>
    fail("fileCopy", 'must be an object, e.g. {"maxBytes": 1073741824, "reserveBytes": 67108864}'),
  );
  const keys = ["maxBytes", "maxFiles", "reserveBytes", "reservePercent", "reserveInodes"] as const;
  unknownIn(o, keys, "fileCopy.");
  const whole = (key: (typeof keys)[number], min: number, max: number): number => {
    const x = o[key] ?? FILECOPY_LIMITS[key];
    if (typeof x !== "number" || !Number.isInteger(x) || x < min || x > max)
      fail(`fileCopy.${key}`, `must be a whole number from ${min} to ${max}`);
    return x as number;
  };
  return {
    maxBytes: whole("maxBytes", 1, Number.MAX_SAFE_INTEGER),
    maxFiles: whole("maxFiles", 1, 10_000_000),
    reserveBytes: whole("reserveBytes", 0, Number.MAX_SAFE_INTEGER),
    reservePercent: whole("reservePercent", 0, 50),
    reserveInodes: whole("reserveInodes", 0, Number.MAX_SAFE_INTEGER),
  };
}

function parseKeyLock(
  v: unknown,
  fail: (key: string, what: string) => never,
  unknownIn: (x: Record<string, unknown>, known: readonly string[], prefix: string) => void,
): KeyLockConfig {
  if (v === undefined) return KEY_LOCK_DEFAULTS;
  const o = object(v, () =>
    fail("keyLock", 'must be an object, e.g. {"maxAttempts": 5, "idleSeconds": 900}'),
  );
  const keys = ["unlockedHome", "maxAttempts", "idleSeconds", "unplugGraceSeconds"] as const;
  unknownIn(o, keys, "keyLock.");
  const whole = (key: Exclude<(typeof keys)[number], "unlockedHome">, min: number, max: number): number => {
    const x = o[key] ?? KEY_LOCK_DEFAULTS[key];
    if (typeof x !== "number" || !Number.isInteger(x) || x < min || x > max)
      fail(`keyLock.${key}`, `must be a whole number from ${min} to ${max}`);
    return x as number;
  };
  const home = o.unlockedHome ?? KEY_LOCK_DEFAULTS.unlockedHome;
  if (typeof home !== "string" || !isAbsolute(home) || home.split("/").length < 3)
    fail(
      "keyLock.unlockedHome",
      "must be an absolute path below a tmpfs mount, e.g. /run/qubes-air/gnupg-unlocked",
    );
  return {
    unlockedHome: home as string,
    maxAttempts: whole("maxAttempts", 1, 100),
    idleSeconds: whole("idleSeconds", 1, 7 * 24 * 3600),
    unplugGraceSeconds: whole("unplugGraceSeconds", 0, 24 * 3600),
  };
}

function parseDisplay(
  v: unknown,
  linkTty: string | null,
  fail: (key: string, what: string) => never,
  unknownIn: (x: Record<string, unknown>, known: readonly string[], prefix: string) => void,
): Config["display"] {
  if (v === undefined) return null;
  const o = object(v, () =>
    fail("display", 'must be an object, e.g. {"framebuffer": "auto", "console": "/dev/tty1"}'),
  );
  unknownIn(o, ["framebuffer", "console"], "display.");
  const path = (key: string, x: unknown): string | null => {
    if (x === undefined) return null;
    if (typeof x !== "string" || !isAbsolute(x)) fail(`display.${key}`, "must be an absolute path");
    return x as string;
  };
  const framebuffer = o.framebuffer === "auto" ? "auto" : path("framebuffer", o.framebuffer);
  const console = path("console", o.console);
  if (console !== null && console === linkTty)
    fail("display.console", "is the link's own tty: the host could read the prompts' lines there");
  return { framebuffer, console };
}

function parseTcp(text: string, fail: (key: string, what: string) => never): TcpAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : -1;
  if (!m || port > 65535) {
    fail("listen.tcp", `must be "ADDR:PORT" (e.g. "0.0.0.0:7441" or "[::]:7441"), not "${text}"`);
  }
  return { host: (m![1] ?? m![2])!, port };
}

function object(v: unknown, onError: () => never): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) onError();
  return v as Record<string, unknown>;
}

function unknownKeys(
  o: Record<string, unknown>,
  known: readonly string[],
  path: string,
  prefix: string,
): void {
  for (const key of Object.keys(o)) {
    if (!known.includes(key)) {
      throw new ConfigError(
        `${path}: unknown key "${prefix}${key}"; the known keys here are ${known.map((k) => `"${prefix}${k}"`).join(", ")} ` +
          "(see docs/agent.md)",
      );
    }
  }
}
