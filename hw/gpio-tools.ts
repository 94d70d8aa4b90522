/**
 * The button through libgpiod's command-line tools, for runtimes without bun:ffi (the Node
 * bundle on the Armory, or wherever FFI fails). libgpiod 1.x (Debian bookworm: 1.6.3) and 2.x
 * differ in syntax and output, so the version is detected from `gpiomon --version`:
 *
 *   v1: gpiomon [-B pull-up] [-b] [-F fmt] <chip> <offset>   %e: 1 rising, 0 falling; %s %n time
 *   v2: gpiomon -c <chip> [-b pull-up] [-p 10ms] [-F fmt] <offset>   %e: 1 rising, 2 falling; %S
 *
 * gpiomon is started when a wait begins and killed when it ends, so only edges after the start
 * are seen (presses before the wait never count). v1 has no debounce option; the classifier's
 * minimum press length covers bounce. Parsers here are pure and tested on recorded output.
 */

import { assert } from "../core/errors.ts";
import { platform } from "../platform/index.ts";
import { type ButtonLine, CHECK_CONFIG, GpioLineError } from "./gpio-chardev.ts";
import type { ApprovalInput, Verdict } from "./input.ts";
import { edgeToButton, LONG_PRESS_MS, PressClassifier } from "./press.ts";

export type LibgpiodVersion = 1 | 2;

/** "gpiomon (libgpiod) v1.6.3" -> 1; "gpiomon (libgpiod) v2.1" -> 2. */
export function parseLibgpiodVersion(text: string): LibgpiodVersion | null {
  const m = /\(libgpiod\)\s+v(\d+)\./.exec(text);
  if (!m) return null;
  const major = Number(m[1]);
  return major === 1 || major === 2 ? major : null;
}

/** gpiodetect (both versions): "gpiochip0 [pinctrl-bcm2711] (58 lines)". */
export function parseGpiodetect(text: string): { name: string; label: string; lines: number }[] {
  const out: { name: string; label: string; lines: number }[] = [];
  for (const m of text.matchAll(/^(gpiochip\d+) \[(.*)\] \((\d+) lines\)$/gm)) {
    out.push({ name: m[1]!, label: m[2]!, lines: Number(m[3]) });
  }
  return out;
}

/** gpioinfo <chip> (both versions): '\tline  17:\t"GPIO17"  ...' or 'line  17: unnamed ...'. */
export function parseGpioinfo(text: string): { offset: number; name: string | null }[] {
  const out: { offset: number; name: string | null }[] = [];
  for (const m of text.matchAll(/^\s*line\s+(\d+):\s+(?:"([^"]*)"|unnamed)/gm)) {
    out.push({ offset: Number(m[1]), name: m[2] ?? null });
  }
  return out;
}

export function gpiomonArgv(
  version: LibgpiodVersion,
  chip: string,
  offset: number,
  activeLow: boolean,
  debounceMs: number,
): string[] {
  const bias = activeLow ? "pull-up" : "pull-down";
  if (version === 1)
    return ["gpiomon", `--bias=${bias}`, "--line-buffered", "--format=%e %s %n", chip, String(offset)];
  const argv = ["gpiomon", "--chip", chip, `--bias=${bias}`, "--edges=both", "--consumer=qubes-air"];
  if (debounceMs > 0) argv.push(`--debounce-period=${debounceMs}ms`);
  return [...argv, "--format=%e %S", String(offset)];
}

/** One gpiomon output line to an edge and a timestamp in ns; null for anything else. */
export function parseGpiomonLine(
  version: LibgpiodVersion,
  line: string,
): { edge: "rising" | "falling"; timestampNs: bigint } | null {
  if (version === 1) {
    const m = /^([01]) (\d{1,12}) (\d{1,9})$/.exec(line.trim());
    if (!m) return null;
    return {
      edge: m[1] === "1" ? "rising" : "falling",
      timestampNs: BigInt(m[2]!) * 1_000_000_000n + BigInt(m[3]!),
    };
  }
  const m = /^([12]) (\d{1,12})\.(\d{9})$/.exec(line.trim());
  if (!m) return null;
  return {
    edge: m[1] === "1" ? "rising" : "falling",
    timestampNs: BigInt(m[2]!) * 1_000_000_000n + BigInt(m[3]!),
  };
}

async function run(argv: string[]): Promise<string> {
  const child = await platform.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const chunks: Uint8Array[] = [];
  for (let c = await child.stdout!.read(); c; c = await child.stdout!.read()) chunks.push(c);
  const errText: Uint8Array[] = [];
  for (let c = await child.stderr!.read(); c; c = await child.stderr!.read()) errText.push(c);
  const exit = await child.exited;
  child.stdout!.close();
  child.stderr!.close();
  const text = new TextDecoder().decode(Buffer.concat(chunks));
  if (exit.code !== 0) {
    const err = new TextDecoder().decode(Buffer.concat(errText)).trim();
    throw new Error(`${argv.join(" ")} failed (${exit.code ?? exit.signal}): ${err}`);
  }
  return text;
}

/** Which libgpiod the tools are, or a clear error when they are missing. */
export async function detectLibgpiod(): Promise<LibgpiodVersion> {
  let text: string;
  try {
    text = await run(["gpiomon", "--version"]);
  } catch (e) {
    throw new GpioLineError(
      "no-backend",
      `libgpiod tools are not usable (apt install gpiod): ${(e as Error).message}`,
    );
  }
  const v = parseLibgpiodVersion(text);
  if (!v)
    throw new GpioLineError(
      "no-backend",
      `unknown libgpiod version (1.x and 2.x are known): ${text.split("\n")[0]}`,
    );
  return v;
}

export class ToolsButton implements ApprovalInput {
  readonly description: string;
  private pending = false;
  private closed = false;
  private readonly kills = new Set<() => void>();

  private constructor(
    private readonly version: LibgpiodVersion,
    private readonly chip: string,
    private readonly offset: number,
    private readonly line: ButtonLine,
    private readonly longPressMs: number,
  ) {
    this.description = `gpiomon v${version} ${line.chipLabel}/${line.line}`;
  }

  static async open(line: ButtonLine, options: { longPressMs?: number } = {}): Promise<ToolsButton> {
    const version = await detectLibgpiod();
    const chips = parseGpiodetect(await run(["gpiodetect"]));
    const chip = chips.find((c) => c.label === line.chipLabel);
    if (!chip) {
      const seen = chips.map((c) => `${c.name} [${c.label}]`).join(", ") || "none";
      throw new GpioLineError(
        "no-chip",
        `no gpio chip labelled ${line.chipLabel} (found: ${seen}): ${CHECK_CONFIG}`,
      );
    }
    const found = parseGpioinfo(await run(["gpioinfo", chip.name])).find((l) => l.name === line.line);
    if (!found)
      throw new GpioLineError(
        "no-line",
        `gpio chip ${chip.name} [${line.chipLabel}] has no line named ${line.line}: ${CHECK_CONFIG}`,
      );
    return new ToolsButton(version, chip.name, found.offset, line, options.longPressMs ?? LONG_PRESS_MS);
  }

  async waitForVerdict(signal: AbortSignal): Promise<Verdict> {
    if (this.closed) throw new GpioLineError("closed", `${this.description} is closed`);
    // The confirmation manager runs one prompt at a time: a second wait is our bug.
    assert(!this.pending, "gpio button: a wait is already pending");
    if (signal.aborted) throw signal.reason;
    this.pending = true;
    const argv = gpiomonArgv(this.version, this.chip, this.offset, this.line.activeLow, 10);
    const child = await platform.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
    const kill = () => child.kill("SIGTERM");
    this.kills.add(kill);
    const onAbort = () => kill();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const classifier = new PressClassifier(this.longPressMs);
      const decoder = new TextDecoder();
      let buffered = "";
      for (let c = await child.stdout!.read(); c; c = await child.stdout!.read()) {
        buffered += decoder.decode(c, { stream: true });
        let nl = buffered.indexOf("\n");
        for (; nl >= 0; nl = buffered.indexOf("\n")) {
          const ev = parseGpiomonLine(this.version, buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
          if (!ev) continue;
          const verdict = classifier.feed(edgeToButton(ev.edge, this.line.activeLow), ev.timestampNs);
          if (verdict) return verdict;
        }
        if (buffered.length > 4096) buffered = "";
      }
      if (signal.aborted) throw signal.reason;
      const exit = await child.exited;
      throw new GpioLineError(
        "monitor-ended",
        `${argv.join(" ")} ended (${exit.code ?? exit.signal}) before a press`,
      );
    } finally {
      signal.removeEventListener("abort", onAbort);
      kill();
      child.stdout!.close();
      this.kills.delete(kill);
      this.pending = false;
    }
  }

  close(): void {
    this.closed = true;
    for (const kill of this.kills) kill();
  }
}
