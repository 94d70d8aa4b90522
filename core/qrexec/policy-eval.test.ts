/**
 * evaluate(): the request/decision rows of test/vectors/policy/device-policy.json (see its
 * README), the token-against-target table of upstream TC_00_VMToken.test_100_match_single
 * re-expressed as one-rule policies, and the device-specific guarantees.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  deviceSystem,
  type PolicyDecision,
  type PolicyFile,
  type PolicySystem,
  type QubeInfo,
  type ReadInclude,
} from "./policy.ts";
import { evaluate } from "./policy-eval.ts";
import { parsePolicy } from "./policy-parse.ts";

interface VectorFile {
  name: string;
  lines: string[];
}
interface VectorCase {
  service?: string;
  arg?: string;
  source: string;
  target: string;
  expect: Record<string, unknown>;
  note?: string;
}
interface VectorSet {
  id: string;
  from: string;
  system: string;
  files: VectorFile[];
  includes?: Record<string, VectorFile[]>;
  cases: VectorCase[];
}
const vectors = JSON.parse(
  readFileSync(join(import.meta.dir, "../../test/vectors/policy/device-policy.json"), "utf8"),
) as { systems: Record<string, Record<string, QubeInfo>>; policies: VectorSet[] };

const toFiles = (list: VectorFile[]): PolicyFile[] =>
  list.map((f) => ({ name: f.name, text: f.lines.join("\n") }));
const reader =
  (includes: Record<string, VectorFile[]> = {}): ReadInclude =>
  (path, kind) => {
    const key = `${kind}:${path}`;
    return Object.hasOwn(includes, key) ? toFiles(includes[key]!) : null;
  };
const systemOf = (name: string): PolicySystem => ({
  qubes: new Map(Object.entries(vectors.systems[name] ?? {})),
});

/** Compares only the fields the row names; `rule` is "FILE:LINE" or null. */
function check(d: PolicyDecision, e: Record<string, unknown>): void {
  const got: Record<string, unknown> = {
    action: d.action,
    target: d.target,
    rule: d.rule === null ? null : `${d.rule.file}:${d.rule.line}`,
    reason: d.reason,
    ...d.params,
  };
  const picked = Object.fromEntries(Object.keys(e).map((k) => [k, got[k]]));
  expect(picked).toEqual(e);
  if (d.action !== "deny") expect(d.reason).toBeNull();
  if (d.action === "deny") expect(d.target).toBeNull();
}

describe("device-policy.json", () => {
  const rows = vectors.policies.reduce((n, s) => n + s.cases.length, 0);
  test(`has at least 60 request rows (${rows})`, () => expect(rows).toBeGreaterThanOrEqual(60));
  for (const set of vectors.policies) {
    describe(`${set.id} (${set.from})`, () => {
      const load = () => parsePolicy(toFiles(set.files), reader(set.includes));
      test("parses", () => expect(load().rules.length).toBeGreaterThanOrEqual(0));
      for (const c of set.cases) {
        const service = c.service ?? "test.Service";
        const arg = c.arg ?? "argument";
        test(`${service}+${arg} ${c.source} -> ${JSON.stringify(c.target)}${c.note ? `: ${c.note}` : ""}`, () => {
          check(
            evaluate(load(), { service, arg, source: c.source, target: c.target }, systemOf(set.system)),
            c.expect,
          );
        });
      }
    });
  }
});

const UUID0 = "uuid:00000000-0000-0000-0000-000000000000";
const STANDALONE = "uuid:7e57a000-0000-4000-8000-000000000009";
const DVM = "uuid:7e57a000-0000-4000-8000-000000000005";
// [rule target token, intended target, matches] (upstream test_100_match_single, our fixture).
const MATCH_SINGLE: [string, string, boolean][] = [
  [UUID0, "@adminvm", true],
  [UUID0, "dom0", true],
  [UUID0, "@dispvm:default-dvm", false],
  [UUID0, "test-vm1", false],
  ["@anyvm", "test-vm1", true],
  ["@anyvm", "@default", true],
  ["@default", "@default", true],
  ["@tag:tag1", "test-vm1", true],
  ["@type:AppVM", "test-vm1", true],
  ["@type:TemplateVM", "test-template", true],
  ["@anyvm", "@dispvm", true],
  ["@anyvm", "@dispvm:default-dvm", true],
  ["@dispvm", "@dispvm", true],
  ["@dispvm:@tag:tag3", "@dispvm:test-vm3", true],
  ["@adminvm", "@adminvm", true],
  ["@adminvm", "dom0", true],
  ["dom0", "@adminvm", true],
  ["@adminvm", UUID0, true],
  ["dom0", "dom0", true],
  ["test-vm3", "dom0", false],
  ["dom0", "test-vm3", false],
  ["test-vm3", "@adminvm", false],
  ["@adminvm", "test-vm3", false],
  ["test-vm3", UUID0, false],
  [UUID0, "test-vm3", false],
  ["@dispvm:default-dvm", "@dispvm:default-dvm", true],
  ["*", "test-vm1", true],
  ["*", "@dispvm", true],
  ["*", "@adminvm", true],
  ["@default", "no-such-vm", true],
  ["@default", "test-vm1", false],
  ["@tag:tag1", "test-vm3", false],
  ["@dispvm:@tag:tag1", "@dispvm:test-vm3", false],
  ["@dispvm:@tag:tag3", "@dispvm:default-dvm", false],
  ["@anyvm", "dom0", false],
  ["@anyvm", "@adminvm", false],
  ["@tag:dom0-tag", "@adminvm", false],
  ["@type:AdminVM", "@adminvm", false],
  ["@tag:dom0-tag", "dom0", true],
  ["@type:AdminVM", "dom0", true],
  ["@tag:tag1", "dom0", false],
  ["@dispvm", "test-vm1", false],
  ["@dispvm", "default-dvm", false],
  ["@dispvm:default-dvm", "default-dvm", false],
  [STANDALONE, "test-standalone", true],
  [DVM, "default-dvm", true],
  [`@dispvm:${DVM}`, `@dispvm:${DVM}`, true],
  [`@dispvm:${DVM}`, "@dispvm:default-dvm", true],
  ["@dispvm:default-dvm", `@dispvm:${DVM}`, true],
  ["test-standalone", STANDALONE, true],
  // The @dispvm keyword stands for the caller's default template (TC_10_Rule.test_050).
  ["@dispvm:default-dvm", "@dispvm", true],
  ["@dispvm:test-vm3", "@dispvm", false],
];

describe("a target token against an intended target (upstream match_single)", () => {
  const qubes = systemOf("qubes");
  for (const [token, target, expected] of MATCH_SINGLE) {
    test(`${token} ${expected ? "matches" : "does not match"} ${target}`, () => {
      const policy = parsePolicy([{ name: "50-t.policy", text: `* * * ${token} deny` }]);
      const d = evaluate(policy, { service: "test.Service", arg: "", source: "test-vm1", target }, qubes);
      expect(d.reason).toBe(expected ? "deny-rule" : "no-matching-rule");
    });
  }
});

describe("source tokens", () => {
  const qubes = systemOf("qubes");
  const decide = (source: string, token: string) =>
    evaluate(
      parsePolicy([{ name: "50-t.policy", text: `* * ${token} * deny` }]),
      { service: "s", arg: "", source, target: "test-vm2" },
      qubes,
    ).reason;
  test("@dispvm:NAME and @dispvm:@tag:T never match a caller (upstream: the source is a plain name)", () => {
    expect(decide("default-dvm", "@dispvm:default-dvm")).toBe("no-matching-rule");
    expect(decide("test-vm3", "@dispvm:@tag:tag3")).toBe("no-matching-rule");
  });
  test("dom0 is matched by @adminvm, dom0 and the zero uuid, never by @anyvm", () => {
    for (const t of ["@adminvm", "dom0", UUID0, "*"]) expect(decide("dom0", t)).toBe("deny-rule");
    expect(decide("dom0", "@anyvm")).toBe("no-matching-rule");
    expect(decide(UUID0, "@adminvm")).toBe("deny-rule");
  });
  test("a source given by uuid matches its name, tag and type", () => {
    for (const t of ["test-standalone", "@tag:tag1", "@type:StandaloneVM"])
      expect(decide(STANDALONE, t)).toBe("deny-rule");
  });
});

describe("on a device", () => {
  const policy = parsePolicy([
    {
      name: "30-user.policy",
      text: "qubes.Gpg2 * work-email @anyvm ask\nqubes.Gpg2 * @tag:work @anyvm allow\n* * @anyvm @anyvm deny\n",
    },
  ]);
  const req = (source: string, target = "pi-gpg") => ({ service: "qubes.Gpg2", arg: "", source, target });

  test("deviceSystem lists the device as a RemoteVM and keeps what else it was told", () => {
    const s = deviceSystem("pi-gpg", { "work-email": { tags: ["work"] }, "pi-gpg": { tags: ["x"] } });
    expect(s.qubes.get("pi-gpg")).toEqual({ type: "RemoteVM", tags: ["x"] });
    expect(s.qubes.get("work-email")).toEqual({ tags: ["work"] });
  });

  test("ask comes back as ask, with the device as the only target on offer", () => {
    const d = evaluate(policy, req("work-email"), deviceSystem("pi-gpg"));
    expect(d).toEqual({
      action: "ask",
      target: "pi-gpg",
      rule: { file: "30-user.policy", line: 1 },
      params: { user: null, notify: false, autostart: true, targets: ["pi-gpg"], defaultTarget: null },
      reason: null,
    });
  });

  test("a tag matches only when the device was told about it", () => {
    expect(evaluate(policy, req("work2"), deviceSystem("pi-gpg")).action).toBe("deny");
    const told = deviceSystem("pi-gpg", { work2: { tags: ["work"] } });
    expect(evaluate(policy, req("work2"), told)).toMatchObject({ action: "allow", target: "pi-gpg" });
  });

  test("if the system does not list the device, its name is unknown and ask has nothing to offer", () => {
    const d = evaluate(policy, req("work-email"), { qubes: new Map() });
    expect(d).toMatchObject({ action: "deny", reason: "no-ask-targets" });
  });

  test("names that are Object.prototype keys are ordinary names", () => {
    const p = parsePolicy([{ name: "a.policy", text: "* * constructor @tag:toString allow\n" }]);
    const s = deviceSystem("toString", { hasOwnProperty: { tags: ["toString"] } });
    expect(evaluate(p, req("constructor", "toString"), s).action).toBe("deny");
    expect(evaluate(p, req("constructor", "hasOwnProperty"), s)).toMatchObject({ action: "allow" });
  });

  test("evaluation does not change the policy or the system", () => {
    const system = deviceSystem("pi-gpg", { "work-email": { tags: [] } });
    const before = JSON.stringify([policy, [...system.qubes]]);
    for (const s of ["work-email", "dom0", "x"]) evaluate(policy, req(s), system);
    expect(JSON.stringify([policy, [...system.qubes]])).toBe(before);
  });

  test("an invalid request is denied, never thrown", () => {
    const s = deviceSystem("pi-gpg");
    for (const r of [
      { service: "", arg: "", source: "a", target: "pi-gpg" },
      { service: "+x", arg: "", source: "a", target: "pi-gpg" },
      { service: "x", arg: " ", source: "a", target: "pi-gpg" },
      { service: "x", arg: "", source: "", target: "pi-gpg" },
      { service: "x", arg: "", source: "a-dm", target: "pi-gpg" },
      { service: "x", arg: "", source: "a", target: "*" },
    ]) {
      expect(evaluate(policy, r, s)).toMatchObject({ action: "deny", rule: null });
    }
  });
});
