/**
 * `bun run demo`: a complete local zone on this machine, end to end, with the real programs.
 *
 *   sys-remote:  `qubes-air daemon` + the `qubesair.NoiseProxy` relay, run as qrexec runs it
 *   pi-gpg:      `qubes-air-agent` on a pty pair standing in for a USB-serial line
 *   cloud-build: `qubes-air-agent` on TCP, as a cloud VM
 *
 * It pairs both with one-time tokens, shows `qubes-air list`, runs calls from a Qubes qube to
 * the devices through the relay (and one the device's own policy refuses), a call from a
 * device into Qubes (through a qrexec-client-vm stand-in), copies a file to a device and back,
 * and prints what happened. It finishes by itself and removes everything it created.
 */
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hasSocat, ptyPair } from "../fixtures/pty.ts";
import {
  BUN,
  cleanEnv,
  cleanup,
  ROOT,
  run,
  spawnLogged,
  stubPath,
  tempDir,
} from "../fixtures/qubes-stubs/processes.ts";

const say = (s = "") => console.log(s);
const step = (s: string) => say(`\n== ${s}`);
const indent = (text: string) =>
  text
    .trimEnd()
    .split("\n")
    .map((l) => `   ${l}`)
    .join("\n");

const DEVICE_SERVICES: Record<string, string> = {
  "demo.Hello": '#!/bin/sh\necho "hello from $(hostname), you are $QREXEC_REMOTE_DOMAIN"\n',
  "demo.Sha256": "#!/bin/sh\nsha256sum | cut -c1-16\n",
  "demo.Secret": "#!/bin/sh\necho this must never run\n",
};
const DEVICE_POLICY = `# The device's own policy (upstream policy.d grammar): first match wins, default deny.
demo.Secret        *  @anyvm  @anyvm  deny
demo.Hello         *  @anyvm  @anyvm  allow
demo.Sha256        *  @anyvm  @anyvm  allow
qubes.Filecopy     *  @anyvm  @anyvm  allow
# Demo only: lets sys-remote fetch files back, from the export directory (~/QubesOutgoing) only.
# The shipped default denies this.
qubesair.CopyFrom  *  @anyvm  @anyvm  allow
`;

function writeAgent(name: string, listen: Record<string, string>): { config: string; home: string } {
  const dir = tempDir(`qa-demo-${name}-`);
  for (const sub of ["policy", "rpc", "home", "state"])
    mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "policy", "30-demo.policy"), DEVICE_POLICY);
  for (const [service, text] of Object.entries(DEVICE_SERVICES)) {
    writeFileSync(join(dir, "rpc", service), text);
    chmodSync(join(dir, "rpc", service), 0o755);
  }
  const config = join(dir, "agent.json");
  writeFileSync(
    config,
    JSON.stringify({
      name,
      stateDir: join(dir, "state"),
      listen,
      serviceDirs: [join(dir, "rpc")],
      policyDir: join(dir, "policy"),
      incomingDir: join(dir, "home"),
      socket: join(dir, "agent.sock"),
    }),
  );
  return { config, home: join(dir, "home") };
}

const agentCli = (config: string, args: string[], env = cleanEnv(), stdin?: string) =>
  run([BUN, join(ROOT, "agent/main.ts"), ...args, "--config", config], env, stdin);

async function main(): Promise<void> {
  say("qubes-air demo: a local zone with two remote qubes");
  const base = tempDir("qa-demo-sysremote-");
  const stubDir = join(base, "qubes-rpc");
  mkdirSync(stubDir);
  writeFileSync(
    join(stubDir, "demo.Vault"),
    '#!/bin/sh\necho "vault answers $QREXEC_REMOTE_DOMAIN: $(cat)"\n',
  );
  chmodSync(join(stubDir, "demo.Vault"), 0o755);
  const hostEnv = {
    ...cleanEnv(),
    PATH: stubPath(),
    HOME: join(base, "home"),
    QUBES_AIR_STATE: join(base, "state"),
    QUBES_AIR_SOCKET: join(base, "run", "daemon.sock"),
    QREXEC_STUB_DIR: stubDir,
    QREXEC_STUB_LOG: join(base, "qrexec.log"),
  };
  const host = (args: string[], stdin?: string | Uint8Array) =>
    run([BUN, join(ROOT, "host/main.ts"), ...args], hostEnv, stdin);

  step("start the devices");
  const pty = hasSocat() ? await ptyPair() : null;
  const piListen: Record<string, string> = pty ? { tty: pty.a } : { tcp: "127.0.0.1:0" };
  const pi = writeAgent("pi-gpg", piListen);
  const cloud = writeAgent("cloud-build", { tcp: "127.0.0.1:0" });
  const piAgent = spawnLogged([BUN, join(ROOT, "agent/main.ts"), "run", "--config", pi.config], {
    ...cleanEnv(),
    HOME: pi.home,
  });
  const cloudAgent = spawnLogged([BUN, join(ROOT, "agent/main.ts"), "run", "--config", cloud.config], {
    ...cloudEnvHome(cloud.home),
  });
  const piPort = pty ? null : (await piAgent.waitLine(/listening tcp=\S+ port=(\d+)/))[1];
  if (pty) await piAgent.waitLine(/listening tty=/);
  const cloudPort = (await cloudAgent.waitLine(/listening tcp=\S+ port=(\d+)/))[1];
  say(
    `   pi-gpg       agent on ${pty ? `a pty pair (${pty.a} <-> ${pty.b}), our USB-serial stand-in` : `tcp 127.0.0.1:${piPort} (socat missing: no pty)`}`,
  );
  say(`   cloud-build  agent on tcp 127.0.0.1:${cloudPort}`);

  step("start sys-remote's daemon and pair both devices with one-time tokens");
  // No dom0 here to register RemoteVMs in (docs/enrolment.md): the demo's qrexec stand-in
  // stands for the calls between qubes only.
  const daemon = spawnLogged([BUN, join(ROOT, "host/main.ts"), "daemon", "--no-register"], hostEnv);
  await daemon.waitLine(/listening on/);
  for (const [name, agent, transport] of [
    ["pi-gpg", pi, pty ? ["--serial", pty.b] : ["--tcp", `127.0.0.1:${piPort}`]],
    ["cloud-build", cloud, ["--tcp", `127.0.0.1:${cloudPort}`, "--zone", "cloud"]],
  ] as const) {
    const token = (await agentCli(agent.config, ["pair-token"])).stdout.trim();
    const paired = await host(["pair", name, ...transport, "--token", token]);
    if (paired.code !== 0) throw new Error(`pairing ${name} failed: ${paired.stderr}`);
    say(`   ${name}: paired (token ${token.slice(0, 8)}…, used once, then deleted on the device)`);
    await daemon.waitLine(new RegExp(`${name}: up`));
  }

  step("qubes-air list");
  say(indent((await host(["list"])).stdout));

  step("a work qube calls pi-gpg through the relay, as Qubes 4.3 runs qubesair.NoiseProxy");
  const relay = (argument: string, stdin: string) =>
    run(
      [BUN, join(ROOT, "host/relay/main.ts"), argument],
      {
        ...hostEnv,
        QREXEC_SERVICE_ARGUMENT: argument,
        QREXEC_REMOTE_DOMAIN: "work",
        QREXEC_SERVICE_FULL_NAME: `qubesair.NoiseProxy+${argument}`,
        QUBESDB_STUB: "/remote/pi-gpg=pi-gpg",
      },
      stdin,
    );
  const hello = await relay("pi-gpg+demo.Hello+", "");
  say(`   demo.Hello   exit ${hello.code}: ${hello.stdout.trim()}`);
  const data = randomBytes(1 << 20);
  const sum = await relay("pi-gpg+demo.Sha256+", data.toString("base64"));
  const expected = createHash("sha256").update(data.toString("base64")).digest("hex").slice(0, 16);
  say(
    `   demo.Sha256  exit ${sum.code}: ${sum.stdout.trim()} (local: ${expected}) ${sum.stdout.trim() === expected ? "match" : "MISMATCH"}`,
  );
  const secret = await relay("pi-gpg+demo.Secret+", "");
  say(`   demo.Secret  exit ${secret.code}: refused by the device's own policy; the service did not run`);

  step("cloud-build calls into Qubes (qrexec-client-vm --source-qube=cloud-build, a stand-in here)");
  const inbound = await agentCli(
    cloud.config,
    ["call", "vault", "demo.Vault"],
    cloudEnvHome(cloud.home),
    "build 42 passed",
  );
  say(`   exit ${inbound.code}: ${inbound.stdout.trim()}`);
  say(`   qrexec saw: ${readFileSync(hostEnv.QREXEC_STUB_LOG, "utf8").trim()}`);

  step("copy a file to cloud-build and back");
  const file = join(base, "report.bin");
  writeFileSync(file, randomBytes(3 << 20));
  const sent = await host(["copy-to", "cloud-build", file]);
  say(
    `   copy-to   exit ${sent.code}${sent.stderr.trim() ? `  ${sent.stderr.trim().split("\n").at(-1)}` : ""}`,
  );
  const incoming = join(cloud.home, "QubesIncoming");
  const landed = join(incoming, readdirSync(incoming)[0]!, "report.bin");
  // On the device, its user puts the file where copy-from may read it: the export directory.
  mkdirSync(join(cloud.home, "QubesOutgoing"), { mode: 0o700 });
  copyFileSync(landed, join(cloud.home, "QubesOutgoing", "report.bin"));
  const back = join(base, "back");
  const fetched = await host(["copy-from", "--to", back, "cloud-build", "report.bin"]);
  say(`   copy-from exit ${fetched.code}`);
  const digest = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
  say(
    `   original ${digest(file).slice(0, 16)}  on device ${digest(landed).slice(0, 16)}  back ${digest(join(back, "report.bin")).slice(0, 16)}`,
  );

  step("qubes-air list (after the traffic)");
  say(indent((await host(["list"])).stdout));
  pty?.close();
  say(
    `\ndone: everything above ran as real processes over real sockets${pty ? " and a real pty" : " (no pty: socat is missing, so pi-gpg used TCP)"}.`,
  );
}

function cloudEnvHome(home: string): Record<string, string> {
  return { ...cleanEnv(), HOME: home };
}

try {
  await main();
} finally {
  cleanup();
}
process.exit(0);
