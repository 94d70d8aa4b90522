import { describe, expect, test } from "bun:test";
import { ENCR, LISTING, PRIMARY, SIGN } from "../../test/fixtures/gpg/listing.ts";
import { colonUnescape, describeKey, displaySafe, keyDescription, parseSecretKeyListing } from "./keyring.ts";

describe("device keyring index", () => {
  const k = parseSecretKeyListing(LISTING);

  test("keygrips map to the primary and its subkeys", () => {
    expect(k.primaries).toHaveLength(1);
    const p = k.byGrip.get(PRIMARY)!;
    expect(p.isPrimary).toBe(true);
    expect(p.capabilities).toBe("cESC");
    const s = k.byGrip.get(SIGN)!;
    expect(s).toMatchObject({
      isPrimary: false,
      capabilities: "s",
      fingerprint: "126979468643FEB04C397A6C4E17D75C8785E163",
      primaryFingerprint: "16513FB3BF2BFF1C83BA4AB60238DB12129981E5",
      uid: "T <t@example.invalid>",
      secretHere: true,
    });
    expect(k.byGrip.get(ENCR)!.capabilities).toBe("e");
  });

  test("descriptions come from the keyring only", () => {
    const s = k.byGrip.get(SIGN)!;
    expect(describeKey(s)).toBe(
      "T <t@example.invalid> [16513FB3BF2BFF1C83BA4AB60238DB12129981E5] subkey 126979468643FEB04C397A6C4E17D75C8785E163",
    );
    expect(keyDescription(s)).toBe(
      "UID: T <t@example.invalid>\nFingerprint: 16513FB3BF2BFF1C83BA4AB60238DB12129981E5\n" +
        "Subkey Fingerprint: 126979468643FEB04C397A6C4E17D75C8785E163",
    );
  });

  test("stubs, escapes, several keys", () => {
    const text = [
      LISTING.replace("cESC:::+", "cESC:::#"),
      "sec:u:255:22:AAAA:1::::::cS:::+::ed25519:::0:",
      "fpr:::::::::BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB:",
      "grp:::::::::CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC:",
      "uid:u::::1::X::Evil\\x3a \\n\\x1b[31mred::::::::::0:",
    ].join("\n");
    const k2 = parseSecretKeyListing(text);
    expect(k2.primaries).toHaveLength(2);
    expect(k2.byGrip.get(PRIMARY)!.secretHere).toBe(false);
    const e = k2.byGrip.get("C".repeat(40))!;
    expect(e.uid).toBe("Evil: \n\x1b[31mred");
    expect(describeKey(e)).toBe(`Evil: ..[31mred [${"B".repeat(40)}]`);
  });

  test("colonUnescape and displaySafe", () => {
    expect(colonUnescape("a\\\\b\\x3ac\\0")).toBe("a\\b:c\0");
    expect(displaySafe("a\u202eb\u0085c")).toBe("a.b.c");
    expect(displaySafe("x".repeat(100), 10)).toBe(`${"x".repeat(9)}…`);
  });
});
