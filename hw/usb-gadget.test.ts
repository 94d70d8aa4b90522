/**
 * The configfs gadget: the plan's content and order, the applier on a temp dir, and the shell
 * script run by /bin/sh on another temp dir giving the same tree. Also the host's udev rules.
 */
import { describe, expect, test } from "bun:test";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { BOARDS } from "./boards.ts";
import { interfaceName, udevRules } from "./udev.ts";
import {
  applyGadget,
  deriveMac,
  deriveSerial,
  gadgetPlan,
  gadgetShellScript,
  teardownPlan,
} from "./usb-gadget.ts";

const serial = deriveSerial(new TextEncoder().encode("device static public key"));
const spec = { serial, hostMac: deriveMac(serial, "host"), devMac: deriveMac(serial, "device") };
const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));

/** Every file, dir and link under root as "path=content" / "path/" / "path->target". */
function tree(root: string, dir = root): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      const rel = relative(root, p);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) return [`${rel}->${relative(root, readlinkSync(p))}`];
      if (st.isDirectory()) return [`${rel}/`, ...tree(root, p)];
      return [`${rel}=${readFileSync(p, "utf8")}`];
    });
}

function fakeUdc(): string {
  const dir = tmp("qa-udc-");
  mkdirSync(join(dir, "fe980000.usb"));
  return dir;
}

describe("identity", () => {
  test("serial and MACs are stable, valid and distinct per end", () => {
    expect(serial).toMatch(/^QA-[0-9A-F]{16}$/);
    expect(deriveSerial(new TextEncoder().encode("device static public key"))).toBe(serial);
    expect(spec.hostMac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(spec.hostMac).not.toBe(spec.devMac);
    const first = Number.parseInt(spec.hostMac.slice(0, 2), 16);
    expect(first & 0x03).toBe(0x02); // locally administered, unicast
  });
});

describe("gadgetPlan", () => {
  test("ACM + ECM with the serial; attributes before links; bind last", () => {
    const steps = gadgetPlan(BOARDS.pi4, spec);
    const writes = Object.fromEntries(
      steps.flatMap((s) =>
        s.op === "write" ? [[s.path.replace("usb_gadget/qubes-air/", ""), s.value]] : [],
      ),
    );
    expect(writes).toMatchObject({
      idVendor: "0x1d6b",
      idProduct: "0x0104",
      "strings/0x409/serialnumber": serial,
      "configs/c.1/strings/0x409/configuration": "ACM+ECM",
      "functions/ecm.usb0/host_addr": spec.hostMac,
      "functions/ecm.usb0/dev_addr": spec.devMac,
    });
    const ops = steps.map((s) => s.op);
    expect(ops.at(-1)).toBe("bind");
    expect(ops.lastIndexOf("write")).toBeLessThan(ops.indexOf("symlink"));
    expect(steps.filter((s) => s.op === "symlink").map((s) => s.path)).toEqual([
      "usb_gadget/qubes-air/configs/c.1/acm.usb0",
      "usb_gadget/qubes-air/configs/c.1/ecm.usb0",
    ]);
  });

  test("refuses boards without a port, bad serials and bad MACs", () => {
    expect(() => gadgetPlan(BOARDS.pi3, spec)).toThrow("no USB device-mode port");
    expect(() => gadgetPlan(BOARDS.pi4, { ...spec, serial: "x'; rm -rf /" })).toThrow("bad USB serial");
    expect(() => gadgetPlan(BOARDS.pi4, { ...spec, hostMac: "01:02" })).toThrow("bad MAC");
  });

  test("teardown unbinds first and removes the gadget last", () => {
    const t = teardownPlan();
    expect(t[0]).toEqual({ op: "write", path: "usb_gadget/qubes-air/UDC", value: "" });
    expect(t.at(-1)).toEqual({ op: "rmdir", path: "usb_gadget/qubes-air" });
  });
});

describe("applying", () => {
  test("the applier and the shell script build the same tree", async () => {
    const udcDir = fakeUdc();
    const a = tmp("qa-configfs-a-");
    applyGadget(gadgetPlan(BOARDS.zero2w, spec), { configfsRoot: a, udcDir });
    const b = tmp("qa-configfs-b-");
    const script = join(tmp("qa-script-"), "gadget.sh");
    writeFileSync(script, gadgetShellScript(BOARDS.zero2w, spec));
    const run = Bun.spawnSync(["sh", script], {
      env: { PATH: "/usr/bin:/bin", CONFIGFS: b, UDC_DIR: udcDir },
    });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
    const ta = tree(a);
    expect(ta).toEqual(tree(b));
    expect(ta).toContain("usb_gadget/qubes-air/UDC=fe980000.usb");
    expect(ta).toContain(
      "usb_gadget/qubes-air/configs/c.1/ecm.usb0->usb_gadget/qubes-air/functions/ecm.usb0",
    );
  });

  test("no UDC: a clear error from both", () => {
    const empty = tmp("qa-udc-empty-");
    expect(() =>
      applyGadget(gadgetPlan(BOARDS.pi5, spec), { configfsRoot: tmp("qa-c-"), udcDir: empty }),
    ).toThrow("no USB device controller");
    const script = join(tmp("qa-script-"), "gadget.sh");
    writeFileSync(script, gadgetShellScript(BOARDS.pi5, spec));
    const run = Bun.spawnSync(["sh", script], {
      env: { PATH: "/usr/bin:/bin", CONFIGFS: tmp("qa-c-"), UDC_DIR: empty },
    });
    expect(run.exitCode).toBe(1);
    expect(run.stderr.toString()).toContain("no USB device controller");
  });
});

describe("udev rules", () => {
  test("match vendor, product and serial; stable tty link and interface name", () => {
    const text = udevRules([{ name: "pi-gpg", serial }]);
    expect(text).toContain(
      `SUBSYSTEM=="tty", ATTRS{idVendor}=="1d6b", ATTRS{idProduct}=="0104", ATTRS{serial}=="${serial}", SYMLINK+="qubes-air/pi-gpg", GROUP="qubes", MODE="0660"`,
    );
    expect(text).toContain(`ATTRS{serial}=="${serial}", NAME="qa-pi-gpg"`);
    expect(text).toContain('ATTRS{serial}=="QA-*", SYMLINK+="qubes-air/%s{serial}"');
    expect(text.endsWith("\n")).toBe(true);
  });

  test("interface names fit IFNAMSIZ; bad input is refused", () => {
    expect(interfaceName("a-very-long-remote-qube-name").length).toBeLessThanOrEqual(15);
    expect(interfaceName("a-very-long-remote-qube-name")).toBe(interfaceName("a-very-long-remote-qube-name"));
    expect(() => udevRules([{ name: 'x", RUN+="/bin/sh', serial }])).toThrow("bad device name");
    expect(() => udevRules([{ name: "ok", serial: 'QA-1"' }])).toThrow("bad serial");
    expect(() => udevRules([], { group: "a b" })).toThrow("bad group");
  });
});
