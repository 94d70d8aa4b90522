/**
 * Enrolment end to end (docs/enrolment.md): in sys-remote, `qubes-air image build --name pi-gpg`
 * writes a real image (synthetic Raspberry Pi OS base, real sfdisk/debugfs/mtools) and records a
 * pending enrolment with the running daemon. The device is the real agent on a pty pair, started
 * with the image's own token; when its USB serial entry appears (a by-id symlink named as udev
 * names our gadget), the daemon pairs by itself, registers the RemoteVM in the dom0 stand-in
 * through dom0's qubesair.RegisterRemote (the shipped script, allowed by the shipped policy as our
 * evaluator decides), and a relayed call to it works,
 * with nothing typed between the build and the call. The token is then gone on both sides.
 * Refused: the same token twice, an expired enrolment, a device with another identity, and
 * sys-remote removing a RemoteVM it did not create.
 * The agent in the image is a stand-in ELF header (the device here runs the x64 agent from source).
 */
import { afterAll, afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { hasSocat, type PtyPair, ptyPair } from "../../fixtures/pty.ts";
import { makeDom0 } from "../../fixtures/qubes-dom0/dom0.ts";
import {
  buildRelay,
  cleanup,
  cli,
  DEVICE,
  type Host,
  makeHost,
  pairToken,
  runRelayAs,
  startAgent,
  startDaemon,
  stubPath,
  tempDir,
  writeAgentFiles,
} from "../../fixtures/qubes-stubs/harness.ts";
import { request } from "../../host/cli/client.ts";
import { PATHS } from "../../images/device-files.ts";
import { catIn } from "../fixtures/images/helpers.ts";
import { makePiBase, missingTools, PI_ROOT_START } from "../fixtures/images/make-base.ts";
import { lacking } from "../helpers/requires.ts";

setDefaultTimeout(60_000);
const ptys: PtyPair[] = [];
afterEach(() => {
  cleanup();
  for (const p of ptys.splice(0)) p.close();
});
afterAll(cleanup);

const missing = [...missingTools(), ...(hasSocat() ? [] : ["socat"])];
const PRODUCT_FIELD = "qubes-air_Raspberry_Pi_4___400___CM4"; // udev: "qubes-air Raspberry Pi 4 / 400 / CM4"

/** An aarch64 ELF header: what image build checks its --agent to be. */
function fakeArm64Agent(dir: string): string {
  const h = Buffer.alloc(1024);
  h.write("\x7fELF", 0, "latin1");
  h[4] = 2;
  h[5] = 1;
  h[6] = 1;
  h.writeUInt16LE(2, 16);
  h.writeUInt16LE(183, 18);
  const path = join(dir, "qubes-air-agent-linux-arm64");
  writeFileSync(path, h);
  return path;
}

function sysRemote(dom0: ReturnType<typeof makeDom0>): Host {
  return makeHost({
    ...dom0.env("sys-remote"),
    PATH: `${dom0.path.split(":")[0]}:${stubPath()}`,
  });
}

async function daemonFor(host: Host, byId: string) {
  return startDaemon(host, [
    "--serial-by-id-dir",
    byId,
    "--self-name",
    "sys-remote",
    "--hotplug-interval-ms",
    "50",
  ]);
}

/** The real agent on one end of a pty, with `token` as its one-time pairing token (as the image has it). */
async function deviceWithToken(token: string, given?: PtyPair) {
  const pty = given ?? (await ptyPair());
  if (!given) ptys.push(pty);
  const dir = tempDir("qa-device-");
  writeAgentFiles({ dir, tty: pty.a });
  writeFileSync(join(dir, "state", "pairing-token"), `${token}\n`, { mode: 0o600 });
  const agent = await startAgent({ dir, tty: pty.a });
  return { agent, pty, dir };
}

const enrolled = (host: Host) =>
  JSON.parse(readFileSync(join(host.state, "enrolments.json"), "utf8")) as {
    pending: { name: string }[];
    spent: string[];
  };

describe.skipIf(lacking(missing.length > 0 ? missing.join(", ") : null))("enrolment", () => {
  test("flash to call with nothing typed: image build enrols, the device pairs by itself, dom0 gets the RemoteVM, a call works", async () => {
    const work = tempDir("qa-enrol-");
    const dom0 = makeDom0(join(work, "dom0"));
    const host = sysRemote(dom0);
    const byId = tempDir("qa-byid-");
    const [relay, daemon] = await Promise.all([buildRelay(), daemonFor(host, byId)]);
    const base = makePiBase(work, "bookworm", 64);
    const img = join(work, "pi-gpg.img");
    const built = await cli(host, [
      "image",
      "build",
      "--board",
      "pi4",
      "--base",
      base,
      "--out",
      img,
      "--name",
      DEVICE,
      "--agent",
      fakeArm64Agent(work),
      "--no-qr",
    ]);
    expect(built.code).toBe(0);
    expect(built.stdout).toContain("Enrolled with sys-remote's daemon");
    await daemon.waitLine(/pi-gpg: enrolment recorded/);
    const serial = /USB\s+serial (QA-[0-9A-F]+)/.exec(built.stdout)![1]!;
    // What was flashed: the token inside the image is the one the daemon holds.
    const token = catIn(img, PI_ROOT_START * 512, PATHS.token).trim();
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(enrolled(host).pending.map((p) => p.name)).toEqual([DEVICE]);
    expect(readFileSync(join(host.state, "enrolments.json"), "utf8")).toContain(token);

    // Plugged in: the gadget's serial line appears first, the agent (with the image's token)
    // starts a moment later, as at a real first boot; the daemon keeps trying while it is there.
    const pty = await ptyPair();
    ptys.push(pty);
    symlinkSync(pty.b, join(byId, `usb-qubes-air_${PRODUCT_FIELD}_${serial}-if00`));
    await daemon.waitLine(/pi-gpg: enrolling \(serial\)/);
    const device = await deviceWithToken(token, pty);
    await daemon.waitLine(/pi-gpg: RemoteVM created in dom0 \(relayvm sys-remote\)/, 30_000);
    await daemon.waitLine(/pi-gpg: enrolled; its token is spent/);

    const q = dom0.qubes()[DEVICE]!;
    expect(q.class).toBe("RemoteVM");
    expect(q.tags).toContain("created-by-sys-remote");
    expect(q.prefs).toEqual({
      label: "gray",
      relayvm: "sys-remote",
      transport_rpc: "qubesair.NoiseProxy",
      remote_name: DEVICE,
    });
    const echo = await runRelayAs(relay, host, { argument: `${DEVICE}+test.Echo+`, stdin: "signed?\n" });
    expect([echo.code, echo.stdout]).toEqual([0, "signed?\n"]);

    // The token is gone on both sides, and cannot be enrolled again.
    expect(existsSync(join(device.dir, "state", "pairing-token"))).toBe(false);
    expect(enrolled(host)).toMatchObject({ pending: [], spent: [expect.stringMatching(/^[0-9a-f]{64}$/)] });
    expect(readFileSync(join(host.state, "enrolments.json"), "utf8")).not.toContain(token);
    const again = request(host.socket, {
      op: "enrol",
      name: "pi-again",
      zone: "usb",
      label: "gray",
      token: Uint8Array.from(Buffer.from(token, "hex")),
      identity: { usb: { vendor: "qubes-air", product: "qubes-air x", serial: "QA-1" } },
      ttlSeconds: 60,
    });
    await expect(again).rejects.toThrow("already enrolled or used");

    // Removing a RemoteVM sys-remote did not register is refused by dom0, and nothing is unpaired.
    expect(dom0.run(null, ["qvm-tags", DEVICE, "del", "created-by-sys-remote"]).code).toBe(0);
    const refused = await cli(host, ["unpair", DEVICE, "--remove-qube"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("refused: sys-remote registered no RemoteVM named pi-gpg");
    expect((await cli(host, ["list"])).stdout).toContain(DEVICE);
    expect(dom0.qubes()[DEVICE]).toBeDefined();
    // Its own RemoteVM: removed with it.
    expect(dom0.run(null, ["qvm-tags", DEVICE, "add", "created-by-sys-remote"]).code).toBe(0);
    const removed = await cli(host, ["unpair", DEVICE, "--remove-qube"]);
    expect([removed.code, removed.stdout]).toEqual([0, "Unpaired pi-gpg; its RemoteVM is removed in dom0\n"]);
    expect(dom0.qubes()[DEVICE]).toBeUndefined();
  }, 120_000);

  test("refused: the same token twice, an expired enrolment, a device with another identity", async () => {
    const dom0 = makeDom0(join(tempDir("qa-enrol-"), "dom0"));
    const host = sysRemote(dom0);
    const byId = tempDir("qa-byid-");
    const daemon = await daemonFor(host, byId);
    const enrol = (
      name: string,
      token: string,
      serial: string,
      ttlSeconds = 600,
      product = "qubes-air Raspberry Pi 4 / 400 / CM4",
    ) =>
      request(host.socket, {
        op: "enrol",
        name,
        zone: "usb",
        label: "gray",
        token: Uint8Array.from(Buffer.from(token, "hex")),
        identity: { usb: { vendor: "qubes-air", product, serial } },
        ttlSeconds,
      });
    const t1 = "11".repeat(32);
    const t2 = "22".repeat(32);
    await enrol("dev-a", t1, "QA-AAAA");
    await expect(enrol("dev-b", t1, "QA-BBBB")).rejects.toThrow("already enrolled or used");
    await expect(enrol("dev-a", t2, "QA-CCCC")).rejects.toThrow("already pending");

    // Expired: recorded for one second; the device appears after that.
    await enrol("dev-old", t2, "QA-0LD", 1);
    const expired = await deviceWithToken(t2);
    await new Promise((r) => setTimeout(r, 1100)); // the enrolment's lifetime passing, not a wait for an event
    symlinkSync(expired.pty.b, join(byId, `usb-qubes-air_${PRODUCT_FIELD}_QA-0LD-if00`));
    await daemon.waitLine(/dev-old: enrolment (refused: it expired|expired at)/); // at the appearance, or by the timer
    expect(existsSync(join(expired.dir, "state", "pairing-token"))).toBe(true); // never tried

    // Another identity: the recorded serial, but another vendor/product.
    const impostor = await deviceWithToken(t1);
    symlinkSync(impostor.pty.b, join(byId, "usb-Evil_Keyboard_QA-AAAA-if00"));
    await daemon.waitLine(
      /dev-a: enrolment refused: serial device usb-Evil_Keyboard_QA-AAAA-if00 carries its USB serial/,
    );
    expect(existsSync(join(impostor.dir, "state", "pairing-token"))).toBe(true);

    const list = await cli(host, ["list"]);
    expect(list.stdout).not.toContain("dev-");
    expect(Object.keys(dom0.qubes()).filter((n) => n.startsWith("dev-"))).toEqual([]);
    expect(enrolled(host).pending.map((p) => p.name)).toEqual(["dev-a"]); // still waiting for the real one
  });

  test("qubes-air pair registers the RemoteVM too; --no-register leaves dom0 alone and prints the commands", async () => {
    const dom0 = makeDom0(join(tempDir("qa-enrol-"), "dom0"));
    const host = sysRemote(dom0);
    const daemon = await startDaemon(host, ["--self-name", "sys-remote"]);
    const agent = await startAgent();
    const paired = await cli(host, [
      "pair",
      DEVICE,
      "--tcp",
      `127.0.0.1:${agent.port}`,
      "--token",
      await pairToken(agent),
      "--label",
      "purple",
    ]);
    expect([paired.code, paired.stdout]).toEqual([
      0,
      expect.stringContaining("Created the RemoteVM pi-gpg in dom0"),
    ]);
    expect(dom0.qubes()[DEVICE]).toMatchObject({
      class: "RemoteVM",
      prefs: { label: "purple", relayvm: "sys-remote" },
    });
    // Paired again after an unpair that kept the qube: its own RemoteVM is updated, not duplicated.
    expect((await cli(host, ["unpair", DEVICE])).code).toBe(0);
    const again = await cli(host, [
      "pair",
      DEVICE,
      "--tcp",
      `127.0.0.1:${agent.port}`,
      "--token",
      await pairToken(agent),
    ]);
    expect(again.code).toBe(0);
    await daemon.waitLine(/pi-gpg: RemoteVM updated in dom0/);
    expect(dom0.qubes()[DEVICE]).toMatchObject({ prefs: { label: "gray", relayvm: "sys-remote" } });
    daemon.proc.kill("SIGTERM");
    await daemon.exited;

    const host2 = sysRemote(dom0);
    await startDaemon(host2, ["--no-register"]);
    const agent2 = await startAgent();
    const manual = await cli(host2, [
      "pair",
      "pi-two",
      "--tcp",
      `127.0.0.1:${agent2.port}`,
      "--token",
      await pairToken(agent2),
    ]);
    expect(manual.code).toBe(0);
    expect(manual.stdout).toContain("qvm-create --class RemoteVM --label gray pi-two");
    expect(manual.stderr).toContain("registration is off");
    expect(dom0.qubes()["pi-two"]).toBeUndefined();
  });

  test("image cloud --address: the daemon pairs with the cloud VM by itself once its agent answers", async () => {
    const dom0 = makeDom0(join(tempDir("qa-enrol-"), "dom0"));
    const host = sysRemote(dom0);
    const daemon = await startDaemon(host, ["--self-name", "sys-remote"]);
    const port = await freePort();
    const out = tempDir("qa-cloud-");
    const built = await cli(host, [
      "image",
      "cloud",
      "--name",
      "build1",
      "--agent-url",
      "https://example.org/qubes-air-agent-linux-x64",
      "--agent-sha256",
      "ab".repeat(32),
      "--address",
      "127.0.0.1",
      "--port",
      String(port),
      "--out",
      out,
    ]);
    expect([built.code, built.stdout]).toEqual([
      0,
      expect.stringContaining("Enrolled with sys-remote's daemon"),
    ]);
    const token = /^ {2}([0-9a-f]{64})$/m.exec(built.stdout)![1]!;
    // The VM boots: cloud-init writes the token, then starts the agent (not listening before).
    const dir = tempDir("qa-device-");
    writeAgentFiles({ dir, tcp: `127.0.0.1:${port}` });
    writeFileSync(join(dir, "state", "pairing-token"), `${token}\n`, { mode: 0o600 });
    await startAgent({ dir, tcp: `127.0.0.1:${port}` });
    await daemon.waitLine(/build1: RemoteVM created in dom0/, 30_000);
    expect(dom0.qubes().build1).toMatchObject({
      class: "RemoteVM",
      tags: expect.arrayContaining(["created-by-sys-remote"]),
    });
    expect((await cli(host, ["list"])).stdout).toMatch(/build1\s+cloud\s+tcp 127\.0\.0\.1/);
  });
});

/** A TCP port nothing listens on now (the cloud VM's, chosen before it boots). */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
