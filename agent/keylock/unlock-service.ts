/**
 * `qubesair.Unlock` on the device (docs/key-lock.md "Unlocking"): stdin is the PIN
 * (core/keylock/pin.ts), read to EOF up to its cap; the answer is one line, on stdout when the
 * key is open (exit 0) and on stderr otherwise (exit 1): wrong PIN with the attempts left, wiped,
 * no sealed key on this device, or unusable. It reaches the device only through the encrypted
 * link and the device's policy (the shipped default allows it from "sys-remote" only).
 * Must never: echo the PIN or a part of it, or tell a wrong PIN apart from a changed sealed file.
 */
import { ProtocolError } from "../../core/errors.ts";
import { PIN_REQUEST_MAX_BYTES, parsePin } from "../../core/keylock/pin.ts";
import type { ByteSink, ByteSource } from "../../transport/transport.ts";
import type { Log } from "../log.ts";
import type { KeyLock } from "./key-lock.ts";

export interface UnlockIo {
  readonly stdin: ByteSource;
  readonly stdout: ByteSink;
  readonly stderr: ByteSink;
}

async function readCapped(src: ByteSource, max: number): Promise<Uint8Array | null> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for (let c = await src.read(); c; c = await src.read()) {
    n += c.length;
    if (n > max) return null;
    parts.push(c.slice());
  }
  const out = Buffer.concat(parts);
  for (const p of parts) p.fill(0);
  return out;
}

export async function serveUnlock(
  io: UnlockIo,
  ctx: { lock: KeyLock | null; source: string; log: Log },
): Promise<number> {
  const say = async (sink: ByteSink, line: string, status: number) => {
    await sink.write(new TextEncoder().encode(`${line}\n`)).catch(() => {});
    await io.stdout.closeWrite().catch(() => {});
    return status;
  };
  const raw = await readCapped(io.stdin, PIN_REQUEST_MAX_BYTES);
  if (!ctx.lock) {
    raw?.fill(0);
    return say(io.stderr, "this device's key has no PIN (set one up on the device with gpg-setup --pin)", 1);
  }
  let pin: string;
  try {
    if (!raw) throw new ProtocolError("frame-too-large", "PIN request");
    pin = parsePin(raw);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    ctx.log("key-unlock-malformed", { source: ctx.source, code: error.code });
    return say(io.stderr, "the PIN request was malformed (4 to 128 characters, no control characters)", 1);
  } finally {
    raw?.fill(0);
  }
  const r = await ctx.lock.unlock(pin, ctx.source);
  switch (r.kind) {
    case "unlocked":
      return say(io.stdout, "unlocked", 0);
    case "already-unlocked":
      return say(io.stdout, "already unlocked", 0);
    case "wrong-pin":
      return say(
        io.stderr,
        `wrong PIN: ${r.attemptsLeft} attempt${r.attemptsLeft === 1 ? "" : "s"} left before the key is wiped`,
        1,
      );
    case "wiped":
      return say(
        io.stderr,
        `the key was wiped after ${r.maxAttempts} wrong PINs; set a key up again on the device (gpg-setup --pin)`,
        1,
      );
    case "unusable":
      return say(io.stderr, `the key cannot be unlocked: ${r.why}`, 1);
  }
}
