/**
 * The daemon's pending enrolments at work (host/daemon/enrolments.ts has the file): recording one
 * (socket op "enrol", sent by `qubes-air image build|cloud`), and pairing by itself with its
 * one-time token when the device first appears: a USB serial entry with the recorded
 * vendor/product/serial, a network interface with the recorded MAC, or (a cloud VM at a known
 * address) a TCP connection tried every ENROL_RETRY_MS.
 *
 * A device that is present but did not answer (its agent still starting) is tried again every
 * ENROL_RETRY_MS while it stays present; "not yet" is logged once per different reason.
 * The token is spent when the pairing succeeded or the device refused it, when the enrolment
 * expired, or when the name got paired another way; a spent token is never accepted again.
 * A transport failure (the agent not listening yet) leaves it pending for the next try.
 * Must never: pair a device whose identity differs from the recorded one, use an expired
 * enrolment, overlap two attempts for one name, or take a name from the device.
 */
import { ConfigError, ProtocolError } from "../../core/errors.ts";
import { isQubeName } from "../../core/qrexec/names.ts";
import type { CborMap } from "../../core/wire/cbor.ts";
import {
  type Enrolment,
  type Enrolments,
  isLabel,
  loadEnrolments,
  MAX_PENDING,
  MAX_SPENT,
  MAX_TTL_SECONDS,
  matchSerialEntry,
  parseIdentity,
  saveEnrolments,
  secondsLeft,
  tokenHash,
} from "./enrolments.ts";
import { type PairRequest, TokenRefused } from "./pairing.ts";
import { isByIdName, isZone, nowIso } from "./registry.ts";

type How = Pick<PairRequest, "transport" | "usbSerial" | "mac">;

/** How often a TCP-only enrolment (cloud VM) is tried while pending. */
export const ENROL_RETRY_MS = 5000;

export interface EnrollerDeps {
  readonly path: string;
  readonly log: (message: string) => void;
  readonly isPaired: (name: string) => boolean;
  /** Pairs (and registers) as `qubes-air pair` would; throws as it does. */
  readonly pair: (req: PairRequest) => Promise<void>;
  readonly retryMs?: number;
}

export class Enroller {
  private state: Enrolments = { pending: [], spent: [] };
  private readonly busy = new Set<string>();
  /** Where each present USB enrolment's device is (its by-id entry, or its MAC's TCP address). */
  private readonly present = new Map<string, How>();
  private readonly notYet = new Map<string, string>();
  private saving: Promise<unknown> = Promise.resolve();
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly d: EnrollerDeps) {}

  async start(presentSerial: readonly string[]): Promise<void> {
    this.state = await loadEnrolments(this.d.path);
    this.timer = setInterval(() => this.retry(), this.d.retryMs ?? ENROL_RETRY_MS);
    this.timer.unref?.();
    for (const name of presentSerial) this.serialAppeared(name);
    this.retry();
  }

  stop(): Promise<unknown> {
    if (this.timer) clearInterval(this.timer);
    return this.saving;
  }

  get pendingCount(): number {
    return this.state.pending.length;
  }

  /** Socket op "enrol": checks and records one; ConfigError (shown to the user) when refused. */
  async record(m: CborMap): Promise<CborMap> {
    const name = m.name;
    if (typeof name !== "string" || !isQubeName(name)) throw new ConfigError("the name must be a qube name");
    const { zone, label, token, ttlSeconds } = m;
    if (typeof zone !== "string" || !isZone(zone))
      throw new ConfigError("the zone must be 1-32 of a-z 0-9 _ . -");
    if (typeof label !== "string" || !isLabel(label))
      throw new ConfigError("the label must be a Qubes label");
    if (!(token instanceof Uint8Array) || token.length !== 32)
      throw new ConfigError("the token must be 32 bytes");
    if (
      typeof ttlSeconds !== "number" ||
      !Number.isInteger(ttlSeconds) ||
      ttlSeconds < 1 ||
      ttlSeconds > MAX_TTL_SECONDS
    )
      throw new ConfigError(`the enrolment must expire within 1 s to ${MAX_TTL_SECONDS / 86400} days`);
    const identity = parseIdentity(m.identity, "the identity");
    if (this.d.isPaired(name))
      throw new ConfigError(`${name} is already paired: unpair it first (qubes-air unpair ${name})`);
    if (this.state.pending.some((p) => p.name === name))
      throw new ConfigError(`an enrolment for ${name} is already pending: build with another --name`);
    const hash = tokenHash(token);
    if (this.state.spent.includes(hash) || this.state.pending.some((p) => tokenHash(p.token) === hash))
      throw new ConfigError(
        "this token was already enrolled or used: a token is good for one enrolment only",
      );
    if (this.state.pending.length >= MAX_PENDING)
      throw new ConfigError(`${MAX_PENDING} enrolments are pending already: pair or let some expire first`);
    const now = Date.now();
    const e: Enrolment = {
      name,
      zone,
      label,
      token,
      identity,
      createdAt: nowIso(now),
      expiresAt: nowIso(now + ttlSeconds * 1000),
    };
    await this.write({ ...this.state, pending: [...this.state.pending, e] });
    this.d.log(`${name}: enrolment recorded (expires ${e.expiresAt})`);
    this.retry();
    return { name, expiresAt: e.expiresAt };
  }

  /** A by-id entry appeared: pair the enrolment it belongs to, or refuse another identity. */
  serialAppeared(entry: string): void {
    // The name comes from the device's descriptors: only one the registry can hold is used.
    if (!isByIdName(entry)) return;
    for (const e of this.state.pending) {
      const m = matchSerialEntry(entry, e.identity);
      if (m === "none") continue;
      if (m === "other-identity") {
        this.d.log(
          `${e.name}: enrolment refused: serial device ${entry} carries its USB serial but not the ` +
            "vendor and product it was built with (another device, or one pretending)",
        );
        continue;
      }
      const serial = "usb" in e.identity ? e.identity.usb.serial : "";
      this.present.set(e.name, { transport: { serial: { byId: entry } }, usbSerial: serial });
      this.attempt(e, this.present.get(e.name)!);
    }
  }

  serialGone(entry: string): void {
    for (const [name, how] of this.present) {
      if ("serial" in how.transport && "byId" in how.transport.serial && how.transport.serial.byId === entry)
        this.present.delete(name);
    }
  }

  netGone(mac: string | null): void {
    for (const [name, how] of this.present)
      if (how.mac !== undefined && how.mac === mac) this.present.delete(name);
  }

  /** A network interface appeared: the enrolment with that MAC pairs over its TCP address. */
  netAppeared(mac: string | null): void {
    if (mac === null) return;
    for (const e of this.state.pending) {
      if ("mac" in e.identity && e.identity.mac === mac) {
        this.present.set(e.name, { transport: { tcp: e.identity.tcp }, mac });
        this.attempt(e, this.present.get(e.name)!);
      }
    }
  }

  /** The timer: expired ones dropped; TCP-only enrolments, and devices present that did not answer yet. */
  private retry(): void {
    for (const e of this.state.pending) {
      if (secondsLeft(e) <= 0 && !this.busy.has(e.name)) {
        this.d.log(
          `${e.name}: enrolment expired at ${e.expiresAt} without the device appearing; token spent`,
        );
        void this.spend(e);
        continue;
      }
      const how: How | undefined =
        "usb" in e.identity || "mac" in e.identity
          ? this.present.get(e.name)
          : { transport: { tcp: e.identity.tcp } };
      if (how) this.attempt(e, how);
    }
  }

  private attempt(e: Enrolment, how: How): void {
    if (this.busy.has(e.name)) return;
    this.busy.add(e.name);
    void this.run(e, how).finally(() => this.busy.delete(e.name));
  }

  private async run(e: Enrolment, how: How): Promise<void> {
    if (secondsLeft(e) <= 0) {
      this.d.log(
        `${e.name}: enrolment refused: it expired at ${e.expiresAt}; build a new image or pair by hand`,
      );
      return this.spend(e);
    }
    if (this.d.isPaired(e.name)) {
      this.d.log(`${e.name}: enrolment withdrawn: the name was paired another way`);
      return this.spend(e);
    }
    if (!this.notYet.has(e.name))
      this.d.log(`${e.name}: enrolling (${"tcp" in how.transport ? `tcp ${how.transport.tcp}` : "serial"})`);
    try {
      await this.d.pair({ name: e.name, zone: e.zone, label: e.label, token: e.token, ...how });
    } catch (error) {
      if (refusedToken(error)) {
        this.d.log(`${e.name}: enrolment refused: the device did not accept its token (used already?)`);
        return this.spend(e);
      }
      if (!this.state.pending.includes(e)) return;
      const why = error instanceof Error ? error.message : "failed";
      if (this.notYet.get(e.name) !== why) this.d.log(`${e.name}: enrolment not yet: ${why}`);
      this.notYet.set(e.name, why);
      return;
    }
    await this.spend(e);
    this.d.log(`${e.name}: enrolled; its token is spent`);
  }

  private async spend(e: Enrolment): Promise<void> {
    this.present.delete(e.name);
    this.notYet.delete(e.name);
    const pending = this.state.pending.filter((p) => p !== e);
    if (pending.length === this.state.pending.length) return;
    const spent = [...this.state.spent, tokenHash(e.token)].slice(-MAX_SPENT);
    await this.write({ pending, spent }).catch((error) =>
      this.d.log(`cannot write ${this.d.path}: ${error instanceof Error ? error.message : error}`),
    );
  }

  /** Serialised writes: the file always holds the latest state, never an interleaving. */
  private write(next: Enrolments): Promise<void> {
    this.state = next;
    const w = this.saving.then(() => saveEnrolments(this.d.path, this.state));
    this.saving = w.catch(() => {});
    return w;
  }
}

/** The device answered and refused the token (as opposed to not answering yet). */
function refusedToken(error: unknown): boolean {
  if (error instanceof ProtocolError) return error.code === "handshake-psk";
  return error instanceof TokenRefused;
}
