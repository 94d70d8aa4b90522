/**
 * qubes.SshAgent against a malicious client qube, with the device's real ssh-agent and key
 * behind it: what is refused never reaches the device's agent or a prompt; signing needs an
 * approval and an audit record on disk first; oversize and malformed frames end the connection.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AuditRecord } from "../../../core/audit/record.ts";
import { SSH_AGENT_LIMITS } from "../../../core/qrexec/services.ts";
import {
  AgentFramer,
  decodeIdentitiesAnswer,
  decodeSignResponse,
  encodeMessage,
  encodeRequestIdentities,
  encodeSessionBind,
  encodeSignRequest,
  fingerprintOf,
  type Identity,
  keyTypeOf,
  SIGN_FLAGS,
  sshString,
} from "../../../core/ssh/agent-protocol.ts";
import type { Verdict } from "../../../hw/input.ts";
import { platform } from "../../../platform/index.ts";
import { ConfirmationManager } from "../../confirmation/manager.ts";
import type { Log } from "../../log.ts";
import { type AuditEntry, AuditWriteError, type AuditWriter } from "../audit/log.ts";
import { DeviceSshAgent } from "./device-agent.ts";
import { serveSshAgent } from "./ssh-agent-service.ts";

setDefaultTimeout(60_000);

const quiet: Log = () => {};
let dir: string;
let device: DeviceSshAgent;
let key: Identity;
let rsa: Identity;

class Writer implements AuditWriter {
  failing = false;
  readonly entries: AuditEntry[] = [];
  append(entry: AuditEntry): Promise<AuditRecord> {
    if (this.failing) return Promise.reject(new AuditWriteError("ENOSPC"));
    this.entries.push(entry);
    return Promise.resolve({ seq: this.entries.length } as AuditRecord);
  }
  noteUnrecorded(): void {}
}

/** A manager whose button gives the verdicts in `verdicts`, counting the prompts. */
function button(verdicts: Verdict[]) {
  const state = { prompts: 0 };
  const manager = new ConfirmationManager({
    input: {
      description: "scripted",
      waitForVerdict: async () => {
        state.prompts++;
        return verdicts.shift() ?? "deny";
      },
      close() {},
    },
    indicator: { description: "none", show() {}, close() {} },
    cooldownMs: 0,
    conflictWindowMs: 0,
    resultMs: 0,
    log: quiet,
  });
  return { manager, state };
}

/** Serves `input` (concatenated requests) on one connection; the replies and the exit status. */
async function serve(input: Uint8Array, verdicts: Verdict[] = [], audit = new Writer(), log: Log = quiet) {
  const b = button(verdicts);
  const out: Uint8Array[] = [];
  let fed = false;
  const status = await serveSshAgent(
    {
      stdin: {
        read: async () => {
          if (fed) return null;
          fed = true;
          return input;
        },
        close() {},
        closed: Promise.resolve(),
      } as never,
      stdout: {
        write: async (d: Uint8Array) => void out.push(d.slice()),
        closeWrite: async () => {},
      } as never,
      stderr: { write: async () => {}, closeWrite: async () => {} } as never,
    },
    { source: "work", device, confirm: b.manager, audit, log },
  );
  const replies = new AgentFramer(1 << 20).push(Uint8Array.from(out.flatMap((c) => [...c])));
  return { status, replies, prompts: b.state.prompts, audit };
}

const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const FAILURE = [5];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "qa-ssh-svc-"));
  mkdirSync(join(dir, "keys"), { mode: 0o700 });
  const gen = await platform.spawn(
    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "unit", "-f", join(dir, "keys", "id_ed25519")],
    { stdin: "ignore", stdout: "ignore", stderr: "ignore" },
  );
  expect((await gen.exited).code).toBe(0);
  const genRsa = await platform.spawn(
    ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "rsa", "-f", join(dir, "keys", "id_rsa")],
    { stdin: "ignore", stdout: "ignore", stderr: "ignore" },
  );
  expect((await genRsa.exited).code).toBe(0);
  device = new DeviceSshAgent(dir, quiet);
  const r = await serve(encodeRequestIdentities());
  const ids = decodeIdentitiesAnswer(r.replies[0]!, 8);
  key = ids.find((i) => keyTypeOf(i.keyBlob) === "ssh-ed25519")!;
  rsa = ids.find((i) => keyTypeOf(i.keyBlob) === "ssh-rsa")!;
  expect([key, rsa].every(Boolean)).toBe(true);
});

afterAll(async () => {
  await device?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("qubes.SshAgent against a malicious client", () => {
  test("an approved signature is made once its request record is written", async () => {
    const r = await serve(encodeSignRequest(key.keyBlob, new TextEncoder().encode("data"), 0), ["approve"]);
    expect(r.status).toBe(0);
    expect(decodeSignResponse(r.replies[0]!)).not.toBeNull();
    expect(r.prompts).toBe(1);
    expect(r.audit.entries.map((e) => `${e.operation} ${e.decision} ${e.result}`)).toEqual([
      "ssh-sign approved requested",
      "ssh-sign approved ok",
    ]);
  });

  test("denied: FAILURE, audited, nothing signed", async () => {
    const r = await serve(encodeSignRequest(key.keyBlob, new TextEncoder().encode("data"), 0), ["deny"]);
    expect([...r.replies[0]!]).toEqual(FAILURE);
    expect(r.audit.entries.map((e) => `${e.decision} ${e.result}`)).toEqual(["denied refused"]);
  });

  test("an unwritable audit log: approved, but nothing is signed", async () => {
    const audit = new Writer();
    audit.failing = true;
    const r = await serve(
      encodeSignRequest(key.keyBlob, new TextEncoder().encode("x"), 0),
      ["approve"],
      audit,
    );
    expect([...r.replies[0]!]).toEqual(FAILURE);
  });

  test("a key that is not the device's: FAILURE without a prompt", async () => {
    const other = cat(sshString(new TextEncoder().encode("ssh-ed25519")), sshString(new Uint8Array(32)));
    const r = await serve(encodeSignRequest(other, new TextEncoder().encode("x"), 0), ["approve"]);
    expect([...r.replies[0]!]).toEqual(FAILURE);
    expect(r.prompts).toBe(0);
  });

  test("refused requests: FAILURE each, the first audited; a flood ends the connection", async () => {
    const some = cat(
      encodeMessage(19),
      encodeMessage(22, sshString(new Uint8Array(2))),
      encodeMessage(17, Uint8Array.of(1)),
    );
    const r = await serve(cat(some, encodeRequestIdentities()));
    expect(r.replies.map((m) => [...m][0])).toEqual([5, 5, 5, 12]);
    expect(r.audit.entries.map((e) => `${e.operation} ${e.result}`)).toEqual([
      "remove-all-identities refused",
    ]);
    const flood = await serve(
      cat(...Array.from({ length: SSH_AGENT_LIMITS.maxRefusals + 5 }, () => encodeMessage(19))),
    );
    expect(flood.status).toBe(1);
    expect(flood.replies).toHaveLength(SSH_AGENT_LIMITS.maxRefusals);
  });

  test("an oversize or malformed frame ends the connection with nothing answered", async () => {
    const big = Uint8Array.of(0, 0x10, 0, 0, 13);
    expect((await serve(big)).status).toBe(1);
    expect((await serve(big)).replies).toEqual([]);
    const malformed = encodeMessage(13, Uint8Array.of(0, 0, 0, 99));
    const r = await serve(malformed, ["approve"]);
    expect([r.status, r.replies.length, r.prompts]).toEqual([1, 0, 0]);
    expect((await serve(encodeRequestIdentities().subarray(0, 3))).status).toBe(1); // cut short
  });
});

/** Red-team attacks on qubes.SshAgent (docs/threat-model.md "Red-team findings"). */
describe("qubes.SshAgent: red-team attacks", () => {
  const data = new TextEncoder().encode("data");

  test("S2: an RSA signature over SHA-1 (no SHA-2 flag) is refused without a prompt; SHA-2 flags sign", async () => {
    // Before the fix the press approved the data's SHA-256 and the device signed its SHA-1.
    for (const flags of [0, 1, 8]) {
      const r = await serve(encodeSignRequest(rsa.keyBlob, data, flags), ["approve"]);
      expect([...r.replies[0]!]).toEqual(FAILURE);
      expect(r.prompts).toBe(0);
      expect(r.audit.entries.map((e) => `${e.operation} ${e.result}`)).toEqual(["sign-rsa-sha1 refused"]);
    }
    for (const [flags, alg] of [
      [SIGN_FLAGS.RSA_SHA2_256, "rsa-sha2-256"],
      [SIGN_FLAGS.RSA_SHA2_512, "rsa-sha2-512"],
    ] as const) {
      const r = await serve(encodeSignRequest(rsa.keyBlob, data, flags), ["approve"]);
      expect(keyTypeOf(decodeSignResponse(r.replies[0]!)!)).toBe(alg);
      expect(r.prompts).toBe(1);
    }
    // ed25519 has one algorithm: its flags change nothing.
    const ed = await serve(encodeSignRequest(key.keyBlob, data, 0), ["approve"]);
    expect(keyTypeOf(decodeSignResponse(ed.replies[0]!)!)).toBe("ssh-ed25519");
  });

  test("S3: signing requests for keys the device does not hold count as refusals: a flood ends the connection", async () => {
    const other = cat(sshString(new TextEncoder().encode("ssh-ed25519")), sshString(new Uint8Array(32)));
    const n = SSH_AGENT_LIMITS.maxRefusals + 5;
    const r = await serve(cat(...Array.from({ length: n }, () => encodeSignRequest(other, data, 0))), [
      "approve",
    ]);
    expect(r.status).toBe(1);
    expect(r.replies).toHaveLength(SSH_AGENT_LIMITS.maxRefusals);
    expect(r.prompts).toBe(0);
  });

  test("S4, S7: a session-bind with a forged host signature is refused by the device's agent and names no host; a flood of them ends the connection", async () => {
    const hostKey = cat(
      sshString(new TextEncoder().encode("ssh-ed25519")),
      sshString(new Uint8Array(32).fill(3)),
    );
    const sessionId = new Uint8Array(32).fill(5);
    const forged = cat(sshString(new TextEncoder().encode("ssh-ed25519")), sshString(new Uint8Array(64)));
    const bind = encodeSessionBind({
      kind: "session-bind",
      hostKey,
      sessionId,
      signature: forged,
      forwarding: false,
    });
    // A userauth request for that session id: the host must not be taken from the refused bind.
    const te = (t: string) => sshString(new TextEncoder().encode(t));
    const userauth = cat(
      sshString(sessionId),
      Uint8Array.of(50),
      te("git"),
      te("ssh-connection"),
      te("publickey"),
      Uint8Array.of(1),
      te("ssh-ed25519"),
      sshString(key.keyBlob),
    );
    const r = await serve(cat(bind, encodeSignRequest(key.keyBlob, userauth, 0)), ["approve"]);
    expect([...r.replies[0]!]).toEqual(FAILURE);
    expect(decodeSignResponse(r.replies[1]!)).not.toBeNull();
    expect(r.audit.entries.map((e) => `${e.operation} ${e.result}`)).toEqual([
      "session-bind-refused refused",
      "ssh-auth requested",
      "ssh-auth ok",
    ]);
    expect(r.audit.entries[1]!.detail).toContain("host=unknown");
    // S7: a flood of forged binds (each a signature check on the device) ends the connection.
    const n = SSH_AGENT_LIMITS.maxRefusals + 5;
    const flood = await serve(cat(...Array.from({ length: n }, () => bind)));
    expect(flood.status).toBe(1);
    expect(flood.replies).toHaveLength(SSH_AGENT_LIMITS.maxRefusals);
  });

  test("S5: other extensions, zero-length and truncated fields: refused or the connection ends, never a prompt", async () => {
    const ext = (name: string, ...rest: Uint8Array[]) =>
      encodeMessage(27, sshString(new TextEncoder().encode(name)), ...rest);
    const r = await serve(
      cat(ext("restrict-destination-v00@openssh.com", sshString(new Uint8Array(8))), ext("query"), ext("")),
      ["approve"],
    );
    expect(r.replies.map((m) => [...m])).toEqual([FAILURE, FAILURE, FAILURE]);
    expect(r.prompts).toBe(0);
    for (const bad of [
      encodeSignRequest(new Uint8Array(0), data, 0), // no key type
      encodeMessage(13, sshString(key.keyBlob), Uint8Array.of(0xff, 0xff, 0xff, 0xff)), // data past the end
      encodeMessage(13, sshString(key.keyBlob), sshString(data)), // no flags
    ]) {
      const x = await serve(bad, ["approve"]);
      expect([x.status, x.replies.length, x.prompts]).toEqual([1, 0, 0]);
    }
  });

  test("S6: through a forwarded agent (a verified session-bind with is_forwarding) the prompt says -forwarded", async () => {
    // A real host key signs the session id, as an SSH server does; the device's ssh-agent checks it.
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const raw = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(-32));
    const te = (t: string) => sshString(new TextEncoder().encode(t));
    const hostKey = cat(te("ssh-ed25519"), sshString(raw));
    const sessionId = randomBytes(32);
    const signature = cat(te("ssh-ed25519"), sshString(new Uint8Array(sign(null, sessionId, privateKey))));
    const userauth = cat(
      sshString(sessionId),
      Uint8Array.of(50),
      te("git"),
      te("ssh-connection"),
      te("publickey"),
      Uint8Array.of(1),
      te("ssh-ed25519"),
      sshString(key.keyBlob),
    );
    for (const forwarding of [false, true]) {
      const bind = encodeSessionBind({ kind: "session-bind", hostKey, sessionId, signature, forwarding });
      const r = await serve(cat(bind, encodeSignRequest(key.keyBlob, userauth, 0)), ["approve"]);
      expect(r.replies.map((m) => m[0])).toEqual([6, 14]);
      const e = r.audit.entries[0]!;
      expect(e.operation).toBe(forwarding ? "ssh-auth-forwarded" : "ssh-auth");
      expect(e.detail).toContain(`host=ssh-ed25519 ${fingerprintOf(hostKey)} `);
    }
  });

  test("S8: a thousand identity requests on one connection: all answered, one journal line", async () => {
    const lines: string[] = [];
    const r = await serve(
      cat(...Array.from({ length: 1000 }, () => encodeRequestIdentities())),
      [],
      new Writer(),
      (event) => lines.push(event),
    );
    expect(r.status).toBe(0);
    expect(r.replies).toHaveLength(1000);
    expect(lines.filter((l) => l === "ssh-identities")).toHaveLength(1);
  });
});
