/**
 * Property tests for the device policy (core/qrexec/policy-parse.ts, policy-eval.ts):
 * - any text, any file names, any include answers: parsePolicy returns a policy or throws
 *   ConfigError, nothing else (AssertionError would mean a bug in us);
 * - any request, valid or not, against any policy that parsed and any system: evaluate never
 *   throws, returns a well-formed decision, allows or asks only through an allow/ask rule, and
 *   denies when no rule matches.
 * FUZZ_RUNS sets the runs per property (default 300; `bun run fuzz` uses 20000).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ConfigError } from "../../core/errors.ts";
import { isQubeName } from "../../core/qrexec/names.ts";
import type {
  Policy,
  PolicyDecision,
  PolicyFile,
  PolicySystem,
  QubeInfo,
  ReadInclude,
} from "../../core/qrexec/policy.ts";
import { evaluate } from "../../core/qrexec/policy-eval.ts";
import { parsePolicy } from "../../core/qrexec/policy-parse.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const params = { numRuns: RUNS };

function tryParse(files: readonly PolicyFile[], read?: ReadInclude): Policy | null {
  try {
    return parsePolicy(files, read);
  } catch (e) {
    if (e instanceof ConfigError) return null;
    throw e;
  }
}

// --- Policy text: arbitrary, and built from the grammar's own words so that parses succeed ---
// biome-ignore format: a word list reads better packed
const WORDS = [
  "*", "+", "+arg", "+a+b", "qubes.Gpg2", "test.Service", "s", "x+y",
  "work", "vault", "dom0", "pi-gpg", "dvm", "@anyvm", "@adminvm", "@default", "@dispvm", "@dispvm:dvm",
  "@dispvm:@tag:t1", "@tag:t1", "@type:AppVM", "@type:RemoteVM", "uuid:00000000-0000-0000-0000-000000000000",
  "allow", "deny", "ask", "target=pi-gpg", "target=@dispvm", "target=dom0", "target=@anyvm", "default_target=pi-gpg",
  "default_target=@dispvm", "user=root", "notify=yes", "notify=no", "autostart=no", "autostart=x", "x=y",
  "#", "# c", "!include", "!include-dir", "!include-service", "!compat-4.0", "inc", "old", "d", "loop", "missing",
  "$anyvm", "allow,target=pi-gpg", "@", "@dispvm:", "uuid:", "\u0000", "\u00a0", "é", "-", ".",
  ",", "$include:inc", "$include:loop",
];
const SEPS = [" ", "  ", "\t", " \t "];
const grammarLine = fc
  .tuple(
    fc.array(fc.constantFrom(...WORDS), { maxLength: 8 }),
    fc.constantFrom(...SEPS),
    fc.constantFrom("", " ", "\t"),
  )
  .map(([ws, sep, indent]) => indent + ws.join(sep));
// Well-formed rules (deny takes only notify=; allow to @default needs target=), so that
// evaluation sees real policies.
const ruleLine = fc
  .tuple(
    fc.constantFrom("*", "qubes.Gpg2", "test.Service", "s"),
    fc.constantFrom("*", "+", "+arg"),
    fc.constantFrom(
      "*",
      "work",
      "vault",
      "dom0",
      "@anyvm",
      "@adminvm",
      "@tag:t1",
      "@type:AppVM",
      "@dispvm:dvm",
    ),
    fc.constantFrom(
      "*",
      "pi-gpg",
      "dom0",
      "@anyvm",
      "@adminvm",
      "@default",
      "@dispvm",
      "@dispvm:dvm",
      "@tag:t1",
    ),
    fc.constantFrom("allow", "deny", "ask"),
    fc.subarray(["target=pi-gpg", "notify=yes", "autostart=no", "user=root", "default_target=@dispvm"]),
  )
  .map(([service, arg, source, target, action, ps]) => {
    let extra = ps.filter((p) =>
      action === "deny" ? p === "notify=yes" : action === "ask" || !p.startsWith("default"),
    );
    if (action === "allow" && target === "@default" && !extra.includes("target=pi-gpg"))
      extra = [...extra, "target=pi-gpg"];
    return [service, service === "*" ? "*" : arg, source, target, action, ...extra].join(" ");
  });
const lines = (line: fc.Arbitrary<string>, minLength = 0) =>
  fc
    .tuple(fc.array(line, { minLength, maxLength: 12 }), fc.constantFrom("\n", "\r\n", "\r"))
    .map(([ls, nl]) => ls.join(nl));
const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  lines(grammarLine),
  lines(fc.oneof(ruleLine, grammarLine)),
);
const fileName = fc.oneof(
  fc.constantFrom(
    "10-a.policy",
    "50-b.policy",
    "90-default.policy",
    "README",
    ".x.policy",
    "Bad.policy",
    "a b.policy",
  ),
  fc.string({ unit: "binary-ascii", maxLength: 10 }).map((s) => `${s}.policy`),
  fc.string({ unit: "binary", maxLength: 10 }),
);

/** Answers includes from a fixed set, with one self-include. */
const read: ReadInclude = (path, kind) => {
  if (kind === "file" && path === "inc") return [{ name: "inc", text: "* * @anyvm @anyvm deny\n" }];
  if (kind === "file" && path === "old")
    return [{ name: "old", text: "$anyvm $anyvm ask,default_target=pi-gpg\n" }];
  if (kind === "file" && path === "loop") return [{ name: "loop", text: "!include loop\n" }];
  if (kind === "dir" && path === "d") return [{ name: "d/1.policy", text: "s * work pi-gpg allow\n" }];
  if (kind === "compat-4.0") return [{ name: "s+arg", text: "work pi-gpg allow\n" }];
  return null;
};

describe("parsePolicy", () => {
  test("any text: a policy or a ConfigError", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        tryParse([{ name: "50-fuzz.policy", text }], read);
      }),
      params,
    );
  });
  test("any set of file names and texts: a policy or a ConfigError", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ name: fileName, text: anyText }), { maxLength: 4 }), (files) => {
        tryParse(files, read);
      }),
      params,
    );
  });
  test("any content in included files, old format and legacy files included", () => {
    const directives = fc.constantFrom(
      "!include inc",
      "!include-service * * inc",
      "!include-dir d",
      "!compat-4.0",
    );
    fc.assert(
      fc.property(
        fc.array(directives, { minLength: 1, maxLength: 4 }),
        anyText,
        fileName,
        (ds, text, name) => {
          const inc: ReadInclude = (path, kind) => {
            if (kind === "file") return path === "inc" ? [{ name: "inc", text }] : null;
            return [{ name, text }];
          };
          tryParse([{ name: "50-fuzz.policy", text: ds.join("\n") }], inc);
        },
      ),
      params,
    );
  });
  test("grammar-built rules parse often enough to exercise evaluation", () => {
    const parsed = fc
      .sample(lines(ruleLine), 200)
      .filter((t) => tryParse([{ name: "a.policy", text: t }]) !== null);
    expect(parsed.length).toBeGreaterThan(100);
  });
});

// --- Requests and systems ---
const qubeName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_.-]{0,30}$/).filter(isQubeName);
const known = fc.constantFrom("work", "vault", "dom0", "pi-gpg", "dvm");
// Weighted towards the names the generated policies use, so that rules match often.
const validRequest = fc.record({
  service: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("qubes.Gpg2", "test.Service", "s") },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.-]{1,40}$/) },
  ),
  arg: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("", "arg", "a+b") },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.+-]{0,40}$/) },
  ),
  source: fc.oneof({ weight: 4, arbitrary: known }, { weight: 1, arbitrary: qubeName }),
  target: fc.oneof(
    { weight: 3, arbitrary: known },
    { weight: 1, arbitrary: qubeName },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        "",
        "@default",
        "@adminvm",
        "@dispvm",
        "@dispvm:dvm",
        "uuid:00000000-0000-0000-0000-000000000000",
      ),
    },
  ),
});
const anyRequest = fc.record({
  service: fc.string({ unit: "binary", maxLength: 20 }),
  arg: fc.string({ unit: "binary", maxLength: 20 }),
  source: fc.oneof(fc.string({ unit: "binary", maxLength: 20 }), known),
  target: fc.oneof(
    fc.string({ unit: "binary", maxLength: 20 }),
    known,
    fc.constantFrom("@anyvm", "*", "@tag:t1"),
  ),
});
const info: fc.Arbitrary<QubeInfo> = fc.record(
  {
    type: fc.constantFrom("AppVM", "RemoteVM", "AdminVM", "TemplateVM"),
    tags: fc.subarray(["t1", "t2"]),
    uuid: fc.constantFrom("00000000-0000-0000-0000-000000000000", "7e57a000-0000-4000-8000-000000000001"),
    defaultDispvm: fc.option(fc.oneof(known, qubeName)),
    templateForDispvms: fc.boolean(),
    running: fc.boolean(),
    internal: fc.boolean(),
  },
  { requiredKeys: [] },
);
const system: fc.Arbitrary<PolicySystem> = fc
  .array(fc.tuple(fc.oneof(known, known, qubeName, fc.constantFrom("constructor", "toString")), info), {
    maxLength: 6,
  })
  .map((entries) => ({ qubes: new Map(entries) }));
const policy: fc.Arbitrary<Policy> = fc
  .array(
    fc.record({
      name: fc.constantFrom("10-a.policy", "50-b.policy", "90-c.policy"),
      text: lines(ruleLine, 4),
    }),
    {
      minLength: 1,
      maxLength: 3,
    },
  )
  .map((files) => tryParse(files, read))
  .filter((p): p is Policy => p !== null);

/** The invariants every decision keeps, whatever the input. */
function wellFormed(p: Policy, d: PolicyDecision): void {
  expect(["allow", "deny", "ask"]).toContain(d.action);
  if (d.rule === null) expect(d.action).toBe("deny");
  if (d.action === "deny") {
    expect(d.target).toBeNull();
    expect(d.reason).not.toBeNull();
    return;
  }
  expect(d.reason).toBeNull();
  expect(typeof d.target).toBe("string");
  const rule = p.rules.find((r) => r.file === d.rule?.file && r.line === d.rule?.line);
  expect(rule?.action.kind).toBe(d.action);
  if (d.action === "ask") expect(d.params.targets.length).toBeGreaterThan(0);
}

describe("evaluate", () => {
  test("valid requests: never throws, decisions are well formed", () => {
    fc.assert(
      fc.property(policy, validRequest, system, (p, r, s) => {
        const d = evaluate(p, r, s);
        wellFormed(p, d);
        if (d.rule !== null && d.reason === "deny-rule") {
          const at = (x: Policy["rules"][number]) => x.file === d.rule?.file && x.line === d.rule?.line;
          expect(p.rules.some((x) => at(x) && x.action.kind === "deny")).toBe(true);
        }
      }),
      params,
    );
  });
  test("valid requests with no rules: default deny", () => {
    fc.assert(
      fc.property(validRequest, system, (r, s) => {
        const d = evaluate({ rules: [] }, r, s);
        expect(d.action).toBe("deny");
        expect(d.rule).toBeNull();
        expect(["no-matching-rule", "invalid-target"] as (string | null)[]).toContain(d.reason);
      }),
      params,
    );
  });
  test("any request, even an invalid one: never throws, decisions are well formed", () => {
    fc.assert(
      fc.property(policy, anyRequest, system, (p, r, s) => {
        wellFormed(p, evaluate(p, r, s));
      }),
      params,
    );
  });
});
