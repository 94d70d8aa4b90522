/**
 * The pure parts of the image builder: option parsing, partition layouts, config.txt editing,
 * first-boot detection and files (cloud-init user-data checked by `cloud-init schema`), apt
 * dependency parsing, debugfs output parsing, the armory edits, the pair command and YAML.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { armoryGadgetEdits, ifupdownUsb0Address, parseSshKeys } from "../../images/board-edits.ts";
import { hostnameFrom, parseBuildOptions } from "../../images/build-options.ts";
import { pairCommand } from "../../images/build-report.ts";
import { PATHS } from "../../images/device-files.ts";
import { checkPath, debugfsErrors, parseStat, splitScriptOutput } from "../../images/ext4.ts";
import { detectFirstBoot, editConfigTxt, parseOsRelease, piUserData } from "../../images/first-boot.ts";
import { INSTALL, installScript, installUnit, runtimeDebName } from "../../images/first-boot-install.ts";
import { nodeDebsVersion, parseAptDepends } from "../../images/node-runtime.ts";
import { armoryLayout, parsePartitionTable, piLayout } from "../../images/partitions.ts";
import { Literal, toYaml } from "../../images/yaml.ts";
import { AGENT_PATHS, agent as agentSpec } from "../../packaging/layout.ts";
import { has, openDir, removeDirs } from "../fixtures/images/helpers.ts";
import { lacking } from "../helpers/requires.ts";

afterAll(removeDirs);

describe("image builder parts", () => {
  test("options: required, boards, names, hostnames", () => {
    const base = ["--board", "pi4", "--base", "b.img", "--out", "o.img"];
    const o = parseBuildOptions(base);
    expect(o !== "help" && [o.name, o.hostname, o.serial, o.tcp]).toEqual(["pi4", "pi4", true, null]);
    expect(parseBuildOptions(["--help"])).toBe("help");
    for (const [args, re] of [
      [["--base", "b", "--out", "o"], /--board is required/],
      [
        ["--board", "pi2", "--base", "b", "--out", "o"],
        /--board must be one of pi3, pi4, pi5, zero2w, armory-mk2/,
      ],
      [[...base, "--bogus"], /Unknown option '--bogus'/],
      [[...base, "--no-serial"], /--no-serial needs --tcp/],
      [[...base, "--pi5-kernel8"], /for --board pi5 only/],
      [[...base, "--sha256", "xyz"], /64 hex digits/],
    ] as [string[], RegExp][]) {
      expect(() => parseBuildOptions(args)).toThrow(re);
    }
    expect(hostnameFrom("Pi_GPG.2")).toBe("pi-gpg-2");
  });

  test("partition tables: Pi and Armory layouts, and clear refusals", () => {
    const json = (parts: object[], label = "dos") =>
      JSON.stringify({ partitiontable: { label, unit: "sectors", sectorsize: 512, partitions: parts } });
    const pi = parsePartitionTable(
      json([
        { start: 8192, size: 1024, type: "c" },
        { start: 9216, size: 4096, type: "83" },
      ]),
      10e6,
      "x",
    );
    expect(piLayout(pi, "x").root.offset).toBe(9216 * 512);
    expect(() => armoryLayout(pi, "x")).toThrow(/inside the U-Boot area/);
    const armory = parsePartitionTable(json([{ start: 10240, size: 4096, type: "83" }]), 10e6, "x");
    expect(armoryLayout(armory, "x")).toMatchObject({ bootArea: 5 * 1024 * 1024 });
    expect(() => piLayout(armory, "x")).toThrow(/does not look like Raspberry Pi OS/);
    expect(() => parsePartitionTable(json([{ start: 2048, size: 1e9, type: "83" }]), 10e6, "x")).toThrow(
      /truncated download/,
    );
    expect(() => parsePartitionTable("", 1, "x")).toThrow(/no partition table/);
  });

  test("config.txt: our block at the end, replaced on rebuild, other dwc2 lines disabled", () => {
    const first = editConfigTxt("dtparam=audio=on\ndtoverlay=dwc2\n[pi4]\narm_boost=1\n", [
      "dtoverlay=dwc2,dr_mode=peripheral",
    ]);
    expect(first).toContain("#dtoverlay=dwc2  # (qubes-air)\n");
    expect(first).toEndWith("[all]\ndtoverlay=dwc2,dr_mode=peripheral\n# qubes-air end\n");
    const second = editConfigTxt(first, ["dtoverlay=dwc2,dr_mode=peripheral", "kernel=kernel8.img"]);
    expect(second.match(/qubes-air begin/g)).toHaveLength(1);
    expect(second).toContain("kernel=kernel8.img");
    expect(editConfigTxt(second, [])).not.toContain("qubes-air begin");
  });

  test("first boot: cloud-init on trixie (seed files or /etc/cloud), userconf on bookworm", () => {
    const os = (c: string) =>
      parseOsRelease(`PRETTY_NAME="Debian GNU/Linux (${c})"\nVERSION_CODENAME=${c}\n`);
    expect(detectFirstBoot(["config.txt", "user-data"], os("bookworm"), false).kind).toBe("cloud-init");
    expect(detectFirstBoot(["config.txt"], os("trixie"), false).kind).toBe("cloud-init");
    expect(detectFirstBoot(["config.txt"], os("bookworm"), true).kind).toBe("cloud-init");
    expect(detectFirstBoot(["config.txt"], os("bookworm"), false).kind).toBe("userconf");
    expect(os("trixie").PRETTY_NAME).toBe("Debian GNU/Linux (trixie)");
  });

  test.skipIf(lacking(has("cloud-init") ? null : "cloud-init"))(
    "Pi user-data with a user and keys passes cloud-init schema",
    () => {
      const dir = openDir("qa-parts-");
      const file = join(dir, "user-data");
      writeFileSync(
        file,
        piUserData("pi-gpg", { user: "qubes", passwordHash: "$6$abc$def", sshKeys: ["ssh-ed25519 AAAA me"] }),
      );
      const r = spawnSync("cloud-init", ["schema", "--config-file", file]);
      expect(r.stdout.toString() + r.stderr.toString()).toContain("Valid cloud-config");
      expect(Bun.YAML.parse(readFileSync(file, "utf8"))).toMatchObject({
        hostname: "pi-gpg",
        users: [
          {
            name: "qubes",
            hashed_passwd: "$6$abc$def",
            lock_passwd: false,
            ssh_authorized_keys: ["ssh-ed25519 AAAA me"],
          },
        ],
      });
    },
  );

  test("apt-cache depends: first alternatives, virtual packages resolved", () => {
    const deps = parseAptDepends(
      "nodejs:armhf\n  Depends: libc6:armhf\n  Depends: libnode108:armhf\nnode-acorn\n  Depends: node-xtend\n |Depends: <nodejs:any>\n    nodejs\n    nodejs:armhf\n  Depends: nodejs\nlibnode108:armhf\n  Depends: <node-undici:armhf>\n    node-undici\n",
    );
    expect(Object.fromEntries(deps)).toEqual({
      "nodejs:armhf": ["libc6:armhf", "libnode108:armhf"],
      "node-acorn": ["node-xtend", "nodejs"],
      "libnode108:armhf": ["node-undici"],
    });
    const need = ["nodejs_18.20.4+dfsg-1~deb12u2_armhf.deb", "libnode108_18.20.4_armhf.deb"];
    const builtins = ["node-acorn_8_all.deb", "node-cjs-module-lexer_1_all.deb", "node-undici_5_all.deb"];
    expect(nodeDebsVersion([...need, ...builtins].map((n) => `/d/${n}`))).toBe("18.20.4+dfsg-1~deb12u2");
    expect(() => nodeDebsVersion(need)).toThrow(/lack node-acorn/);
    expect(() => nodeDebsVersion(builtins)).toThrow(/must include nodejs_\*_armhf\.deb/);
    expect(runtimeDebName("/c/zlib1g_1%3a1.2.13.dfsg-1_armhf.deb")).toBe("zlib1g_1:1.2.13.dfsg-1_armhf.deb");
  });

  test("one layout of the agent's files: images/ never restates a path of the agent package", () => {
    const pkgPaths = agentSpec("arm64")
      .entries.map((e) => e.path)
      .concat(agentSpec("armhf").entries.map((e) => e.path));
    const dir = join(import.meta.dir, "../../images");
    const sources = readdirSync(dir).filter((n) => n.endsWith(".ts") && !n.endsWith(".test.ts"));
    for (const n of sources) {
      const text = readFileSync(join(dir, n), "utf8");
      for (const p of new Set(pkgPaths))
        expect({ file: n, path: p, named: text.includes(`"${p}`) }).toEqual({
          file: n,
          path: p,
          named: false,
        });
    }
    expect(PATHS.config).toBe(AGENT_PATHS.config);
    expect(PATHS.token.startsWith(`${AGENT_PATHS.stateDir}/`)).toBe(true);
  });

  test("the first-boot install script is valid sh, installs the named package and keeps conffiles", () => {
    const text = installScript("qubes-air-agent_1.2_arm64.deb");
    expect(spawnSync("sh", ["-n"], { input: text }).status).toBe(0);
    expect(text).toContain("set -- ./qubes-air-agent_1.2_arm64.deb");
    expect(text).toContain('dpkg --force-confold -i "$@" </dev/null');
    expect(() => installScript("x; rm -rf /.deb")).toThrow();
    expect(installUnit()).toContain(`ConditionPathExists=${INSTALL.script}`);
  });

  test("debugfs output: stat, script sections, errors, path checks", () => {
    const stat = parseStat(
      'Inode: 13   Type: symlink    Mode:  0777   Flags: 0x0\nUser:     0   Group:     0   Project:     0   Size: 21\nFast link dest: "../usr/lib/os-release"',
    );
    expect(stat).toEqual({
      type: "symlink",
      mode: 0o777,
      uid: 0,
      gid: 0,
      size: 21,
      linkTarget: "../usr/lib/os-release",
    });
    expect(parseStat("")).toBeNull();
    expect(splitScriptOutput("debugfs: stat /a\nInode: 1\ndebugfs: stat /b\n").map((p) => p.command)).toEqual(
      ["stat /a", "stat /b"],
    );
    expect(debugfsErrors("debugfs 1.47.0 (5-Feb-2023)\nwrite: Could not allocate block\n")).toEqual([
      "write: Could not allocate block",
    ]);
    for (const bad of ["relative", "/a b", '/a"', "/a/../b", "/a//b"])
      expect(() => checkPath(bad)).toThrow(/unusual path/);
  });

  test("armory edits, usb0 address, ssh keys", () => {
    const plan = armoryGadgetEdits("ledtrig_heartbeat\ng_ether\ni2c-dev\n");
    expect(plan.map((e) => e.path)).toEqual(["/etc/modprobe.d/qubes-air.conf", "/etc/modules"]);
    expect(armoryGadgetEdits("i2c-dev\n")).toHaveLength(1);
    expect(
      ifupdownUsb0Address("auto usb0\niface usb0 inet static\n  address 10.0.0.1\n  netmask 255.255.255.0\n"),
    ).toBe("10.0.0.1");
    expect(ifupdownUsb0Address("iface eth0 inet dhcp\n")).toBeNull();
    expect(parseSshKeys("# c\n\nssh-ed25519 AAAA x\n", "k")).toEqual(["ssh-ed25519 AAAA x"]);
    expect(() => parseSshKeys("\n", "k")).toThrow(/no SSH public key/);
  });

  test("pair command: serial with USB serial, TCP with MAC, placeholder for a wildcard address", () => {
    const usb = { serial: "QA-0123456789ABCDEF", hostMac: "02:00:00:00:00:01", devMac: "02:00:00:00:00:02" };
    expect(
      pairCommand({ name: "pi", listen: { tty: "/dev/ttyGS0", tcp: "10.0.0.1:7441" }, usb, token: "t" }),
    ).toBe(
      "qubes-air pair pi --serial /dev/qubes-air/pi --usb-serial QA-0123456789ABCDEF --zone usb --token t",
    );
    expect(pairCommand({ name: "pi", listen: { tcp: "10.0.0.1:7441" }, usb, token: "t" })).toBe(
      "qubes-air pair pi --tcp 10.0.0.1:7441 --mac 02:00:00:00:00:01 --zone usb --token t",
    );
    expect(pairCommand({ name: "p3", listen: { tcp: "0.0.0.0:7441" }, usb: null, token: "t" })).toBe(
      "qubes-air pair p3 --tcp DEVICE-ADDRESS:7441 --zone lan --token t",
    );
  });

  test("YAML: quoted scalars, flow lists, literal blocks", () => {
    const text = toYaml(
      { a: "yes", n: 1, l: ["x", "y"], m: [{ k: new Literal("line1\nline2\n") }], r: [["a", "b"]] },
      ["#c"],
    );
    expect(text).toBe(
      '#c\na: "yes"\nn: 1\nl: ["x", "y"]\nm:\n  - k: |\n      line1\n      line2\nr:\n  - ["a", "b"]\n',
    );
    expect(Bun.YAML.parse(text)).toEqual({
      a: "yes",
      n: 1,
      l: ["x", "y"],
      m: [{ k: "line1\nline2\n" }],
      r: [["a", "b"]],
    });
    expect(() => toYaml({ "bad key": 1 })).toThrow(/bad key/);
  });
});
