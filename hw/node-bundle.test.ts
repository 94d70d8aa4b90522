/**
 * The Armory runs the agent as a Node bundle (`bun build --target=node`). This bundles the button
 * (whose FFI backend must not break the bundle), the HID loader and the flasher, and runs them
 * under the machine's node with stand-in libgpiod v1 tools in PATH: the button must fall back to
 * gpiomon, and the flasher must write and verify with O_DIRECT from Node's unaligned buffers.
 */
import { expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const node = Bun.which("node");
const root = resolve(import.meta.dir, "..");

test.skipIf(node === null)(
  "button, HID loader and flasher work from a Node bundle",
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "qa-node-bundle-"));
    const bin = join(dir, "bin");
    mkdirSync(bin);
    const tool = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    tool("gpiodetect", 'echo "gpiochip0 [pinctrl-rp1] (54 lines)"');
    tool("gpioinfo", `printf '\\tline  17:     "GPIO17"       unused   input  active-high \\n'`);
    tool(
      "gpiomon",
      '[ "$1" = --version ] && { echo "gpiomon (libgpiod) v1.6.3"; exit 0; }\nsleep 0.1\necho "0 5 0"\necho "1 5 300000000"\nexec sleep 30',
    );
    writeFileSync(join(dir, "img"), crypto.getRandomValues(new Uint8Array(3_000_000)));
    writeFileSync(
      join(dir, "entry.ts"),
      `import { openGpioButton } from ${JSON.stringify(join(root, "hw/gpio-button.ts"))};
import { loadNodeHid } from ${JSON.stringify(join(root, "hw/hid-input.ts"))};
import { flashCommand } from ${JSON.stringify(join(root, "images/flash.ts"))};
const b = await openGpioButton({ chipLabel: "pinctrl-rp1", line: "GPIO17", activeLow: true });
console.log("button", b.description, await b.waitForVerdict(new AbortController().signal));
b.close();
await loadNodeHid().catch((e) => console.log("hid", e.message.split(":")[0]));
const err = [];
const code = await flashCommand([${JSON.stringify(join(dir, "img"))}, ${JSON.stringify(join(dir, "out"))}, "--target-file", "--yes"], {
  out: () => {}, err: (t) => err.push(t), errIsTTY: false, readLine: async () => null });
console.log("flash", code, err.join("").includes("with O_DIRECT") ? "direct" : err.join(""));
`,
    );
    const build = Bun.spawnSync(
      [
        process.execPath,
        "build",
        "--target=node",
        "--format=esm",
        join(dir, "entry.ts"),
        "--outfile",
        join(dir, "b.mjs"),
      ],
      { cwd: root },
    );
    expect(build.exitCode).toBe(0);
    const run = Bun.spawn([node!, join(dir, "b.mjs")], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      stdout: "pipe",
      stderr: "pipe",
    });
    const out = await new Response(run.stdout).text();
    expect(await run.exited).toBe(0);
    expect(out.split("\n").filter(Boolean)).toEqual([
      "button gpiomon v1 pinctrl-rp1/GPIO17 approve",
      "hid USB HID confirmation needs the node-hid package (npm install node-hid@3.4.0, and apt install libusb-1.0-0)",
      "flash 0 direct",
    ]);
    expect(readFileSync(join(dir, "out")).equals(readFileSync(join(dir, "img")))).toBe(true);
  },
  30_000,
);
