/**
 * Approver grants with the ConfirmationManager (manager.ts, approver-grants.ts): a grant stands
 * in for the press only for the named client, only for signatures, only up to its count or its
 * one digest, only before its time bound and only while the policy still allows the approver;
 * everything else waits for the press as before.
 */
import { describe, expect, test } from "bun:test";
import { APPROVE_LIMITS } from "../../core/qrexec/services.ts";
import type { ApprovalInput, Indicator, Verdict } from "../../hw/input.ts";
import { ApproverGrants } from "./approver-grants.ts";
import { ConfirmationManager, type ConfirmationRequest } from "./manager.ts";

class Input implements ApprovalInput {
  readonly description = "test";
  waits = 0;
  waitForVerdict(signal: AbortSignal): Promise<Verdict> {
    this.waits++;
    return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
  }
  close() {}
}
const lights: Indicator = { description: "test", show() {}, close() {} };

const D1 = "A1".repeat(32);
const D2 = "B2".repeat(32);
const sign = (client: string, digest = D1): ConfirmationRequest => ({
  client,
  service: "qubes.Gpg2",
  operation: "PKSIGN",
  key: "Dev <d@x> [ABCD]",
  hashAlgo: "sha256",
  digestPrefix: digest.slice(0, 8),
  digestSuffix: digest.slice(-8),
  digest,
});

function setup() {
  let now = 1_000;
  const allowed = new Set(["build-logs>build-keys"]);
  const grants = new ApproverGrants(
    () => now,
    async (a, c) => allowed.has(`${a}>${c}`),
  );
  const input = new Input();
  const events: string[] = [];
  const m = new ConfirmationManager({
    input,
    indicator: lights,
    timeoutMs: 200,
    cooldownMs: 0,
    resultMs: 0,
    log: () => {},
    monotonicMs: () => now,
    grants,
    onEvent: (e) => events.push(`${e.kind} ${e.request.client}`),
  });
  return { m, grants, input, events, allowed, advance: (ms: number) => (now += ms) };
}

describe("approver grants", () => {
  test("no grant: the press decides (here: nobody presses, so a timeout)", async () => {
    const s = setup();
    expect(await s.m.decide(sign("build-keys"))).toEqual({ approved: false, decision: "timeout" });
    expect(s.input.waits).toBe(1);
  });

  test("a count grant covers exactly N signatures of the named client, then the press again", async () => {
    const s = setup();
    expect(s.grants.grant("build-logs", "build-keys", { kind: "count", count: 2, seconds: 60 }).ok).toBe(
      true,
    );
    const ok = { approved: true, decision: "approver:build-logs" } as const;
    expect(await s.m.decide(sign("build-keys"))).toEqual(ok);
    expect(await s.m.decide({ ...sign("build-keys"), service: "qubes.Gpg", operation: "sign" })).toEqual(ok);
    expect(s.input.waits).toBe(0);
    expect(s.events).toEqual(["approved build-keys", "approved build-keys"]);
    expect((await s.m.decide(sign("build-keys"))).decision).toBe("timeout");
    expect(s.input.waits).toBe(1);
  });

  test("only the named client; never decryption; never another service", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 5, seconds: 60 });
    expect((await s.m.decide(sign("work"))).decision).toBe("timeout");
    expect(
      (await s.m.decide({ client: "build-keys", service: "qubes.Gpg2", operation: "PKDECRYPT", key: "k" }))
        .decision,
    ).toBe("timeout");
    expect(
      (await s.m.decide({ client: "build-keys", service: "qubes.Gpg", operation: "decrypt", key: "k" }))
        .decision,
    ).toBe("timeout");
    expect(
      (
        await s.m.decide({
          client: "build-keys",
          service: "my.Service",
          operation: "call",
          key: "my.Service+",
          argument: "",
        })
      ).decision,
    ).toBe("timeout");
    expect(s.input.waits).toBe(4);
    expect(s.grants.remaining("build-keys")).toEqual([{ approver: "build-logs", count: 5, digests: 0 }]);
  });

  test("the time bound: a grant is gone when its seconds are up", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 5, seconds: 10 });
    s.advance(9_999);
    expect((await s.m.decide(sign("build-keys"))).approved).toBe(true);
    s.advance(1);
    expect((await s.m.decide(sign("build-keys"))).decision).toBe("timeout");
  });

  test("a digest grant passes that digest once and nothing else", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "digest", algo: "sha256", hex: D1, seconds: 60 });
    expect((await s.m.decide(sign("build-keys", D2))).decision).toBe("timeout");
    expect((await s.m.decide({ ...sign("build-keys", D1), hashAlgo: "sha512" })).decision).toBe("timeout");
    // A v1 request without its data's digest (not pre-read) is never covered by a digest grant.
    expect(
      (await s.m.decide({ client: "build-keys", service: "qubes.Gpg", operation: "sign", key: "k" }))
        .decision,
    ).toBe("timeout");
    expect((await s.m.decide(sign("work", D1))).decision).toBe("timeout");
    expect(await s.m.decide(sign("build-keys", D1))).toEqual({
      approved: true,
      decision: "approver:build-logs",
    });
    expect((await s.m.decide(sign("build-keys", D1))).decision).toBe("timeout");
  });

  test("a v1 signature is covered by the digest of its data, for that algorithm only", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "digest", algo: "sha512", hex: D1, seconds: 60 });
    expect(s.m.grantDigestAlgos("build-keys")).toEqual(["sha512"]);
    expect(s.m.grantDigestAlgos("work")).toEqual([]);
    const v1 = (algo: string, hex: string): ConfirmationRequest => ({
      client: "build-keys",
      service: "qubes.Gpg",
      operation: "sign",
      key: "k",
      dataDigests: new Map([[algo, hex]]),
    });
    expect((await s.m.decide(v1("sha256", D1))).decision).toBe("timeout");
    expect((await s.m.decide(v1("sha512", D2))).decision).toBe("timeout");
    expect((await s.m.decide({ ...v1("sha512", D1), operation: "decrypt" })).decision).toBe("timeout");
    expect((await s.m.decide(v1("sha512", D1))).decision).toBe("approver:build-logs");
    expect(s.m.grantDigestAlgos("build-keys")).toEqual([]);
  });

  test("a new count replaces the old one (no accumulation); revoke ends everything", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 5, seconds: 60 });
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 1, seconds: 60 });
    expect(s.grants.remaining("build-keys")).toEqual([{ approver: "build-logs", count: 1, digests: 0 }]);
    s.grants.grant("build-logs", "build-keys", { kind: "digest", algo: "sha256", hex: D1, seconds: 60 });
    s.grants.grant("build-logs", "build-keys", { kind: "revoke" });
    expect((await s.m.decide(sign("build-keys", D1))).decision).toBe("timeout");
  });

  test("a rule removed from the policy ends the grant at its next use", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 5, seconds: 60 });
    s.allowed.clear();
    expect((await s.m.decide(sign("build-keys"))).decision).toBe("timeout");
    s.allowed.add("build-logs>build-keys");
    expect((await s.m.decide(sign("build-keys"))).decision).toBe("timeout");
  });

  test("self-approval and an overfull digest list are refused", () => {
    const s = setup();
    expect(s.grants.grant("build-keys", "build-keys", { kind: "count", count: 1, seconds: 60 }).ok).toBe(
      false,
    );
    for (let i = 0; i < APPROVE_LIMITS.maxDigests; i++) {
      const hex = i.toString(16).toUpperCase().padStart(64, "0");
      expect(
        s.grants.grant("build-logs", "build-keys", { kind: "digest", algo: "sha256", hex, seconds: 60 }).ok,
      ).toBe(true);
    }
    const over = s.grants.grant("build-logs", "build-keys", {
      kind: "digest",
      algo: "sha256",
      hex: D1,
      seconds: 60,
    });
    expect(over.ok ? "" : over.why).toBe("too-many-digests");
  });

  test("concurrent requests never use one grant twice", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 3, seconds: 60 });
    const all = await Promise.all(Array.from({ length: 10 }, () => s.m.decide(sign("build-keys"))));
    expect(all.filter((d) => d.approved)).toHaveLength(3);
  });

  test("a grant needs no press even while another client's prompt is on screen, and withdraws nothing", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 1, seconds: 60 });
    const other = s.m.decide(sign("work"));
    while (!s.m.busy) await new Promise((r) => setTimeout(r, 1));
    expect((await s.m.decide(sign("build-keys"))).approved).toBe(true);
    expect(s.m.busy).toBe(true);
    expect((await other).decision).toBe("timeout");
  });

  test("red team G2: a grant never covers an SSH signature, a key import or a pairing, whatever the operation is called", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 5, seconds: 60 });
    for (const r of [
      { client: "build-keys", service: "qubes.SshAgent", operation: "ssh-auth", key: "k" },
      { client: "build-keys", service: "qubes.SshAgent", operation: "sign", key: "k" },
      { client: "build-keys", service: "qubes.GpgImportKey", operation: "import", key: "k" },
      { client: "build-keys", service: "qubes.GpgImportKey", operation: "sign", key: "k" },
    ])
      expect([r.service, r.operation, (await s.m.decide(r)).decision]).toEqual([
        r.service,
        r.operation,
        "timeout",
      ]);
    expect(s.input.waits).toBe(4);
    expect(s.grants.remaining("build-keys")).toEqual([{ approver: "build-logs", count: 5, digests: 0 }]);
  });

  test("red team G3: a grant is not carried by a look-alike client name", async () => {
    const s = setup();
    s.grants.grant("build-logs", "build-keys", { kind: "count", count: 5, seconds: 60 });
    for (const client of ["build-keys2", "Build-keys", "build-key", "build-keys "])
      expect((await s.m.decide(sign(client))).decision).toBe("timeout");
    expect(s.grants.remaining("build-keys")[0]!.count).toBe(5);
  });
});
