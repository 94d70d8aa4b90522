/**
 * The device's own policy (DESIGN.md "Qubes integration": a compromised sys-remote must not be
 * able to do more on a device than the device allows): the `*.policy` files of policyDir in the
 * upstream policy.d grammar, read fresh for every call (concurrent calls share one read), so an
 * edit takes effect on the next call without a restart.
 *
 * As upstream: no matching rule means deny, and a syntax error anywhere denies every call (and
 * is logged). `@tag:`/`@type:` never match on a device (it knows no Qubes tags or types).
 * Must never: allow a call when the policy cannot be read or parsed.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { ConfigError } from "../../core/errors.ts";
import {
  COMPAT40_PATH,
  type IncludeKind,
  type Policy,
  type PolicyDecision,
  type PolicyFile,
} from "../../core/qrexec/policy.ts";
import { evaluate } from "../../core/qrexec/policy-eval.ts";
import { parsePolicy } from "../../core/qrexec/policy-parse.ts";

/** A policy file larger than this is refused (a policy is a few KiB). */
const POLICY_FILE_MAX_BYTES = 1024 * 1024;

export type Decision =
  | {
      readonly action: "allow" | "ask" | "deny";
      readonly rule: string | null;
      readonly reason: string | null;
    }
  | { readonly action: "deny"; readonly rule: null; readonly reason: "policy-error" };

export class PolicyStore {
  private loading: Promise<Policy> | null = null;
  private lastError: string | null = null;
  /** The last parse and the file names, sizes and mtimes it came from (no includes). */
  private cached: { signature: string; policy: Policy } | null = null;

  constructor(
    readonly dir: string,
    /** This device's qube name: the target of every call from the host. */
    private readonly self: string,
    private readonly onError: (message: string) => void = () => {},
  ) {}

  /** Reads and parses now; throws ConfigError with the file and line (for start-up). */
  async check(): Promise<number> {
    const st = await fsp.stat(this.dir).catch(() => null);
    if (!st?.isDirectory()) {
      throw new ConfigError(
        `policy directory ${this.dir} does not exist; every call would be refused. Create it and copy ` +
          "the default policy into it (see docs/agent.md), or set policyDir in the config",
      );
    }
    return (await this.load()).rules.length;
  }

  /** The decision for a call from `source` to this device. Never throws. */
  async decide(source: string, service: string, arg: string): Promise<Decision> {
    let policy: Policy;
    try {
      // Policy is re-read whenever a file changes, so an edit applies to the next call; the
      // check is a directory listing and a stat per file, not a parse per call.
      const signature = this.signature();
      if (this.cached && signature !== null && this.cached.signature === signature)
        policy = this.cached.policy;
      else {
        this.loading ??= this.load().finally(() => {
          this.loading = null;
        });
        policy = await this.loading;
      }
      this.lastError = null;
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.lastError) this.onError(message);
      this.lastError = message;
      return { action: "deny", rule: null, reason: "policy-error" };
    }
    const system = {
      qubes: new Map([[this.self, {}], ...(source === this.self ? [] : [[source, {}] as const])]),
    };
    const d: PolicyDecision = evaluate(policy, { service, arg, source, target: this.self }, system);
    return { action: d.action, rule: d.rule ? `${d.rule.file}:${d.rule.line}` : null, reason: d.reason };
  }

  /** Names, sizes and mtimes of the policy files; null when the directory cannot be read. */
  private signature(): string | null {
    try {
      const parts: string[] = [];
      for (const name of fs.readdirSync(this.dir).sort()) {
        if (name.startsWith(".") || !name.endsWith(".policy")) continue;
        const st = fs.statSync(join(this.dir, name));
        parts.push(`${name}:${st.size}:${st.mtimeMs}:${st.ino}`);
      }
      return parts.join("/");
    } catch {
      return null;
    }
  }

  private async load(): Promise<Policy> {
    const signature = this.signature();
    let included = false;
    const entries = await fsp.readdir(this.dir, { withFileTypes: true }).catch((e: { code?: string }) => {
      throw new ConfigError(`cannot read policy directory ${this.dir} (${e.code ?? "error"})`);
    });
    const files: PolicyFile[] = [];
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith(".") || !entry.name.endsWith(".policy")) continue;
      files.push({ name: entry.name, text: await readText(join(this.dir, entry.name)) });
    }
    const policy = parsePolicy(files, (path, kind) => {
      included = true; // an included file's changes are not in the signature: never cache then
      return this.readInclude(path, kind);
    });
    this.cached = signature !== null && !included ? { signature, policy } : null;
    return policy;
  }

  /** Includes are resolved synchronously (the parser is pure and synchronous). */
  private readInclude(path: string, kind: IncludeKind): PolicyFile[] | null {
    const full = kind === "compat-4.0" ? COMPAT40_PATH : isAbsolute(path) ? path : join(this.dir, path);
    try {
      const st = fs.statSync(full);
      if (kind === "file") return st.isFile() ? [{ name: full, text: readTextSync(full) }] : null;
      if (!st.isDirectory()) return null;
      return fs
        .readdirSync(full)
        .sort()
        .filter((n) => fs.statSync(join(full, n)).isFile())
        .map((n) => ({ name: kind === "dir" ? join(full, n) : n, text: readTextSync(join(full, n)) }));
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      return null;
    }
  }
}

async function readText(path: string): Promise<string> {
  const st = await fsp.stat(path);
  if (!st.isFile() || st.size > POLICY_FILE_MAX_BYTES) throw new ConfigError(`${path}: not a policy file`);
  return decode(await fsp.readFile(path), path);
}

function readTextSync(path: string): string {
  if (fs.statSync(path).size > POLICY_FILE_MAX_BYTES) throw new ConfigError(`${path}: not a policy file`);
  return decode(fs.readFileSync(path), path);
}

function decode(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(`${path}: not UTF-8 text`);
  }
}
