/**
 * The split-GPG version matrix's world (gpg-matrix-v2.test.ts): one device per gpg-agent
 * version whose served home holds every matrix key that version reads (set up by
 * `gpg-setup --import`, so subkeys only), and one client home per client version × device with
 * the public keys alone. Each client's S.gpg-agent is served by serveGpg2 for its device, with
 * recording proxies on both sides: what the client's gpg said to the filter, and what reached
 * the device's gpg-agent on each socket. Keys are made once, agents are reused by all cases.
 * Not part of the product.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { agentSockets, capture } from "../../agent/services/gpg/gpg-tools.ts";
import { serveGpg2 } from "../../agent/services/gpg/gpg2-service.ts";
import { gpgSetup } from "../../agent/services/gpg/keysetup.ts";
import type { ByteStream } from "../../transport/transport.ts";
import { type Confirming, quietLog } from "../fixtures/gpg/env.ts";
import { recordingProxy, type Served, type Spy, serveSocket } from "../fixtures/gpg/sockets.ts";
import { type MatrixKey, usable } from "./gpg-matrix-keys.ts";
import type { GnupgVersion } from "./gpg-versions.ts";

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

export interface MatrixDevice {
  readonly v: GnupgVersion;
  readonly served: string;
  readonly primary: string;
  readonly keys: readonly MatrixKey[];
}

export async function makeMatrixDevice(v: GnupgVersion, dir: string, all: readonly MatrixKey[]) {
  const served = join(dir, `d${v.label.replace(".", "")}`);
  const primary = `${served}p`;
  const keys = all.filter((k) => usable(k, v));
  for (const k of keys) {
    await gpgSetup({
      gnupgHome: served,
      primaryHome: primary,
      importFile: k.secretFile,
      exportFile: null,
      gpg: v.gpg,
    });
  }
  await agentSockets(served, v);
  return { v, served, primary, keys } satisfies MatrixDevice;
}

export async function run(v: GnupgVersion, home: string, args: string[], input: string | Uint8Array = "") {
  const data = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const r = await capture([v.gpg, "--homedir", home, "--batch", "--no-tty", ...args], {
    input: data,
    timeoutMs: 60_000,
  });
  return { status: r.status, stdout: r.stdout, out: dec(r.stdout), err: dec(r.stderr) };
}

export async function runOk(v: GnupgVersion, home: string, args: string[], input: string | Uint8Array = "") {
  const r = await run(v, home, args, input);
  if (r.status !== 0) throw new Error(`gpg ${v.version} ${args.join(" ")} failed (${r.status}): ${r.err}`);
  return r;
}

/** A home with the public keys of `keys` (those `v` reads) and never an agent of its own. */
export async function publicHome(
  v: GnupgVersion,
  home: string,
  keys: readonly Pick<MatrixKey, "type" | "publicKey">[],
) {
  mkdirSync(home, { mode: 0o700 });
  await Bun.write(join(home, "gpg.conf"), "no-autostart\n");
  for (const k of keys) if (usable(k, v)) await runOk(v, home, ["--import"], k.publicKey);
  return home;
}

export interface MatrixClient {
  readonly v: GnupgVersion;
  readonly device: MatrixDevice;
  readonly home: string;
  /** The keys both ends read. */
  readonly keys: readonly MatrixKey[];
  /** Every line the client's gpg sent to the filter, as text. */
  said(): string;
  /** What reached the device's gpg-agent: on the restricted and on the normal socket. */
  readonly restricted: Spy;
  readonly normal: Spy;
  readonly served: Served;
  close(): Promise<void>;
}

/** Records what a stream's reader gets (the client's side of one connection). */
function recording(s: ByteStream, record: (c: Uint8Array) => void): ByteStream {
  return new Proxy(s, {
    get(target, prop, receiver) {
      if (prop === "read")
        return async () => {
          const c = await target.read();
          if (c) record(c);
          return c;
        };
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export async function makeMatrixClient(
  v: GnupgVersion,
  device: MatrixDevice,
  dir: string,
  c: Confirming,
): Promise<MatrixClient> {
  const tag = `c${v.label.replace(".", "")}${device.v.label.replace(".", "")}`;
  const keys = device.keys.filter((k) => usable(k, v));
  const home = await publicHome(v, join(dir, tag), keys);
  const real = await agentSockets(device.served, device.v);
  const restricted = await recordingProxy(join(dir, `${tag}x`), real.extra);
  const normal = await recordingProxy(join(dir, `${tag}n`), real.normal);
  const dirs = await capture([v.gpgconf, "--homedir", home, "--list-dirs", "agent-socket"]);
  const socket = decodeURIComponent(dec(dirs.stdout).trim());
  let said = "";
  const served = await serveSocket(socket, (io) =>
    serveGpg2(
      { ...io, stdin: recording(io.stdin, (b) => (said += new TextDecoder("latin1").decode(b))) },
      {
        source: "work",
        gnupgHome: device.served,
        gpg: device.v.gpg,
        gpgconf: device.v.gpgconf,
        confirm: c.confirm,
        audit: c.audit,
        sockets: { extra: restricted.path, normal: normal.path },
        log: quietLog,
      },
    ),
  );
  return {
    v,
    device,
    home,
    keys,
    said: () => said,
    restricted,
    normal,
    served,
    async close() {
      await served.close();
      await restricted.close();
      await normal.close();
    },
  };
}
