/**
 * tofu-modules.ts without a parser (the HCL itself is parsed in
 * test/integration/image-cloud-tofu.test.ts): every template key has a value, a value that could
 * end an HCL string or start an interpolation is refused (a bug, never rendered), and each
 * provider's module has its four files (five with --sys-remote) under tofu/PROVIDER/.
 */
import { describe, expect, test } from "bun:test";
import { renderTemplate, TOFU_PROVIDERS, tofuModule, tofuModules } from "./tofu-modules.ts";

describe("tofu modules", () => {
  test("each provider: main.tf, variables.tf, outputs.tf, README.md, and terraform.tfvars with --sys-remote", () => {
    for (const provider of TOFU_PROVIDERS) {
      const without = tofuModule(provider, { name: "a1", port: 7441, sysRemote: undefined });
      expect([...without.keys()].sort()).toEqual(
        ["README.md", "main.tf", "outputs.tf", "variables.tf"].map((f) => `tofu/${provider}/${f}`),
      );
      const withAddr = tofuModule(provider, { name: "a1", port: 7441, sysRemote: "203.0.113.7/32" });
      expect(withAddr.get(`tofu/${provider}/terraform.tfvars`)).toContain(
        'sys_remote_cidr = "203.0.113.7/32"',
      );
      for (const [f, text] of withAddr) expect({ f, left: text.includes("{{") }).toEqual({ f, left: false });
    }
    expect(tofuModules({ name: "a1", port: 7441, sysRemote: undefined }).size).toBe(
      4 * TOFU_PROVIDERS.length,
    );
  });

  test("a name becomes the VM's host name (lowercase, letters, digits and -) where clouds need one", () => {
    const main = tofuModule("google", { name: "Build_1.x", port: 7441, sysRemote: undefined }).get(
      "tofu/google/main.tf",
    )!;
    expect(main).toContain('hostname   = "build-1-x"');
    expect(main).toContain('name       = "Build_1.x"');
  });

  test("a key without a value, or a value that would break out of an HCL string, is a bug", () => {
    expect(() => renderTemplate('x = "{{a}}"', {}, true)).toThrow(/template key a has no value/);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an HCL interpolation, on purpose
    for (const bad of ['a"b', "a\\b", "a\nb", "${x}", "%{if}"])
      expect(() => renderTemplate('x = "{{a}}"', { a: bad }, true)).toThrow(/not safe inside HCL/);
    expect(renderTemplate("x {{a}}", { a: 'he said "hi"' }, false)).toBe('x he said "hi"');
  });
});
