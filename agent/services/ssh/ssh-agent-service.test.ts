/**
 * qubes.SshAgent against a malicious client qube, with the device's real ssh-agent and key
 * behind it: what is refused never reaches the device's agent or a prompt; signing needs an
 * approval and an audit record on disk first; oversize and malformed frames end the connection.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
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
  encodeSignRequest,
  type Identity,
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
async function serve(input: Uint8Array, verdicts: Verdict[] = [], audit = new Writer()) {
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
    { source: "work", device, confirm: b.manager, audit, log: quiet },
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
  device = new DeviceSshAgent(dir, quiet);
  const r = await serve(encodeRequestIdentities());
  key = decodeIdentitiesAnswer(r.replies[0]!, 8)[0]!;
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
