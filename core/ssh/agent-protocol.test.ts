/** The ssh-agent protocol as the device's qubes.SshAgent decodes it. */
import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../errors.ts";
import {
  AgentFramer,
  decodeIdentitiesAnswer,
  decodeRequest,
  decodeSignResponse,
  decodeStatus,
  encodeIdentitiesAnswer,
  encodeMessage,
  encodeSessionBind,
  encodeSignRequest,
  encodeSignResponse,
  FAILURE_MESSAGE,
  fingerprintOf,
  keyTypeOf,
  parseSignedData,
  SSH_AGENT,
  sshString,
} from "./agent-protocol.ts";

const te = (s: string) => new TextEncoder().encode(s);
const cat = (...p: Uint8Array[]) => {
  const out = new Uint8Array(p.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of p) {
    out.set(x, at);
    at += x.length;
  }
  return out;
};
// An ed25519 public key blob: string "ssh-ed25519", string 32 bytes.
const KEY = cat(sshString(te("ssh-ed25519")), sshString(new Uint8Array(32).fill(7)));
const body = (framed: Uint8Array) => framed.subarray(4);
const codeOf = (f: () => unknown) => {
  try {
    f();
    return "ok";
  } catch (e) {
    if (e instanceof ProtocolError) return e.code;
    throw e;
  }
};

describe("ssh-agent messages", () => {
  test("framing: split across chunks, several in one; zero or over-limit lengths refused", () => {
    const f = new AgentFramer(1024);
    const two = cat(encodeMessage(11), encodeMessage(19));
    expect(f.push(two.subarray(0, 3))).toEqual([]);
    expect(f.partial).toBe(true);
    expect(f.push(two.subarray(3)).map((m) => [...m])).toEqual([[11], [19]]);
    expect(f.partial).toBe(false);
    expect(codeOf(() => new AgentFramer(1024).push(Uint8Array.of(0, 0, 0, 0)))).toBe("frame-malformed");
    expect(codeOf(() => new AgentFramer(1024).push(Uint8Array.of(0, 0, 4, 1)))).toBe("frame-too-large");
  });

  test("a 256 KiB message sent a byte at a time is framed in linear time (red team S1)", () => {
    // Before: each chunk was joined to everything held, O(n²): 4.6 s of the agent's one thread
    // for this message on an idle x86-64 core. Now about 0.1 s; 3 s leaves room for a busy box.
    const n = 256 * 1024;
    const message = new Uint8Array(n).map((_, i) => i & 0xff);
    const wire = cat(Uint8Array.of(0, 4, 0, 0), message);
    const f = new AgentFramer(n);
    const got: Uint8Array[] = [];
    const t = performance.now();
    for (let i = 0; i < wire.length; i++) got.push(...f.push(wire.subarray(i, i + 1)));
    expect(performance.now() - t).toBeLessThan(3000);
    expect(got).toHaveLength(1);
    expect(got[0]).toEqual(message);
    expect(f.partial).toBe(false);
    // Messages straddling chunks of every size come out whole and in order.
    const two = cat(encodeMessage(11), encodeMessage(13, new Uint8Array(300).fill(9)), encodeMessage(11));
    for (const step of [1, 2, 3, 5, 7, 64, 301, 1000]) {
      const g = new AgentFramer(1024);
      const out: Uint8Array[] = [];
      for (let i = 0; i < two.length; i += step) out.push(...g.push(two.subarray(i, i + step)));
      expect(out.map((m) => m.length)).toEqual([1, 301, 1]);
      expect(g.partial).toBe(false);
    }
  });

  test("the requests the device serves, and everything else refused by name", () => {
    expect(decodeRequest(Uint8Array.of(11))).toEqual({ kind: "identities" });
    const sign = decodeRequest(body(encodeSignRequest(KEY, te("data"), 4)));
    expect(sign).toEqual({ kind: "sign", keyBlob: KEY, data: te("data"), flags: 4 });
    const bind = {
      kind: "session-bind" as const,
      hostKey: KEY,
      sessionId: te("sid"),
      signature: KEY,
      forwarding: false,
    };
    expect(decodeRequest(body(encodeSessionBind(bind)))).toEqual(bind);
    expect(decodeRequest(Uint8Array.of(19))).toEqual({ kind: "refused", what: "remove-all-identities" });
    expect(decodeRequest(Uint8Array.of(17, 1, 2, 3))).toEqual({ kind: "refused", what: "add-identity" });
    expect(decodeRequest(cat(Uint8Array.of(22), sshString(te("pw"))))).toEqual({
      kind: "refused",
      what: "lock",
    });
    expect(decodeRequest(Uint8Array.of(23))).toEqual({ kind: "refused", what: "unlock" });
    expect(decodeRequest(Uint8Array.of(25))).toEqual({ kind: "refused", what: "add-identity-constrained" });
    expect(decodeRequest(cat(Uint8Array.of(27), sshString(te("query"))))).toEqual({
      kind: "refused",
      what: "extension",
    });
    expect(decodeRequest(Uint8Array.of(200))).toEqual({ kind: "refused", what: "unknown" });
  });

  test("malformed requests are ProtocolErrors with fixed codes", () => {
    expect(codeOf(() => decodeRequest(Uint8Array.of(11, 0)))).toBe("frame-malformed");
    expect(codeOf(() => decodeRequest(Uint8Array.of(13, 0, 0, 0, 9)))).toBe("frame-truncated");
    expect(codeOf(() => decodeRequest(body(encodeSignRequest(te("\u0000bad"), te("d"), 0))))).not.toBe("ok");
    const badBool = cat(
      body(
        encodeSessionBind({
          kind: "session-bind",
          hostKey: KEY,
          sessionId: te("s"),
          signature: KEY,
          forwarding: true,
        }),
      ),
    );
    badBool[badBool.length - 1] = 2;
    expect(codeOf(() => decodeRequest(badBool))).toBe("frame-malformed");
    expect(codeOf(() => decodeRequest(new Uint8Array(0)))).toBe("frame-truncated");
  });

  test("the device agent's answers: identities, signature or failure, status", () => {
    const ids = [{ keyBlob: KEY, comment: "device key" }];
    expect(decodeIdentitiesAnswer(body(encodeIdentitiesAnswer(ids)), 8)).toEqual(ids);
    expect(codeOf(() => decodeIdentitiesAnswer(body(encodeIdentitiesAnswer([...ids, ...ids])), 1))).toBe(
      "schema",
    );
    expect(
      decodeIdentitiesAnswer(body(encodeIdentitiesAnswer([{ keyBlob: KEY, comment: "a\nb\u00e9" }])), 8)[0]!
        .comment,
    ).toBe("a_b__"); // é is two bytes of UTF-8
    const sig = cat(sshString(te("ssh-ed25519")), sshString(new Uint8Array(64)));
    expect(decodeSignResponse(body(encodeSignResponse(sig)))).toEqual(sig);
    expect(decodeSignResponse(body(FAILURE_MESSAGE))).toBeNull();
    expect(codeOf(() => decodeSignResponse(Uint8Array.of(SSH_AGENT.SUCCESS)))).toBe("schema");
    expect(decodeStatus(Uint8Array.of(6))).toBe(true);
    expect(decodeStatus(Uint8Array.of(5))).toBe(false);
    expect(codeOf(() => decodeStatus(Uint8Array.of(6, 0)))).toBe("schema");
  });

  test("signed data: a publickey userauth request names user, service and key; SSHSIG its namespace", () => {
    const userauth = cat(
      sshString(te("session-id-32-bytes")),
      Uint8Array.of(50),
      sshString(te("git\x1b[31m")),
      sshString(te("ssh-connection")),
      sshString(te("publickey")),
      Uint8Array.of(1),
      sshString(te("ssh-ed25519")),
      sshString(KEY),
    );
    expect(parseSignedData(userauth)).toEqual({
      kind: "userauth",
      sessionId: te("session-id-32-bytes"),
      user: "git_[31m",
      service: "ssh-connection",
      algorithm: "ssh-ed25519",
      keyBlob: KEY,
    });
    const hostbound = cat(
      sshString(te("sid")),
      Uint8Array.of(50),
      sshString(te("root")),
      sshString(te("ssh-connection")),
      sshString(te("publickey-hostbound-v00@openssh.com")),
      Uint8Array.of(1),
      sshString(te("ssh-ed25519")),
      sshString(KEY),
      sshString(KEY),
    );
    expect(parseSignedData(hostbound)).toMatchObject({ kind: "userauth", user: "root", hostKey: KEY });
    const sshsig = cat(
      te("SSHSIG"),
      sshString(te("git")),
      sshString(new Uint8Array(0)),
      sshString(te("sha512")),
      sshString(new Uint8Array(64)),
    );
    expect(parseSignedData(sshsig)).toEqual({ kind: "sshsig", namespace: "git", hashAlgorithm: "sha512" });
    expect(parseSignedData(te("just some bytes"))).toEqual({ kind: "other" });
    expect(parseSignedData(userauth.subarray(0, userauth.length - 1))).toEqual({ kind: "other" });
  });

  test("fingerprints as ssh-keygen -l prints them; key type names", () => {
    // SHA256 of the blob, unpadded base64 (the value checked against ssh-keygen in the e2e test).
    expect(fingerprintOf(KEY)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(keyTypeOf(KEY)).toBe("ssh-ed25519");
    expect(codeOf(() => keyTypeOf(sshString(te("Bad Name"))))).toBe("schema");
  });
});
