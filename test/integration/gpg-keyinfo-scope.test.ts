/**
 * The KEYINFO/HAVEKEY paths (issue 15) against real gpg-agent 2.2 and 2.4: a client learns
 * nothing about, and can do nothing with, a key the device does not serve. The device's agent
 * holds, besides the served subkeys, a primary secret key (a full key imported into the served
 * home) and a key the keyring does not list at all (its key file alone); the agent itself
 * answers KEYINFO for both (checked first, so the test means something). Through the filter,
 * each such keygrip, the served key's own primary and a made-up keygrip get byte-identical
 * answers (the agent's "Not found" / "No secret key"), and the agent never hears of them.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { agentSockets, capture, loadKeyring } from "../../agent/services/gpg/gpg-tools.ts";
import { serveGpg2 } from "../../agent/services/gpg/gpg2-service.ts";
import { gpgSetup } from "../../agent/services/gpg/keysetup.ts";
import {
  ERR_FILTERED_LINE,
  ERR_NO_SECKEY_LINE,
  ERR_NOT_FOUND_LINE,
  unescapeData,
} from "../../core/gpg/assuan.ts";
import { platform } from "../../platform/index.ts";
import { type Confirming, cleanup, confirming, quietLog, tempDir } from "../fixtures/gpg/env.ts";
import { recordingProxy, type Served, type Spy, serveSocket } from "../fixtures/gpg/sockets.ts";
import { assuanSession } from "../fixtures/gpg/stack.ts";
import { runOk } from "./gpg-matrix-env.ts";
import { type GnupgVersion, gnupg22, gnupg24, isUnavailable } from "./gpg-versions.ts";

// Real gpg processes (2.4 through a namespace and chroot) on a loaded 2-core machine.
setDefaultTimeout(30_000);

const got24 = await gnupg24();
const VERSIONS: GnupgVersion[] = isUnavailable(got24) ? [] : [await gnupg22(), got24];

interface World {
  readonly v: GnupgVersion;
  readonly home: string;
  readonly socket: string;
  readonly normal: string;
  readonly spies: Spy[];
  readonly served: Served;
  /** Served subkeys; keygrips the device does not serve, by kind. */
  readonly subkeys: string[];
  readonly unserved: Record<"ownPrimary" | "otherPrimary" | "orphan" | "madeUp", string>;
}

let dir: string;
let c: Confirming;
const worlds: World[] = [];

async function makeWorld(v: GnupgVersion): Promise<World> {
  const tag = v.label.replace(".", "");
  const home = join(dir, `s${tag}`);
  const setup = (h: string, uid: string) =>
    gpgSetup({ gnupgHome: h, primaryHome: `${h}p`, generate: uid, exportFile: null, gpg: v.gpg });
  await setup(home, "Served <served@example.invalid>");
  // A full key (primary secret included) imported straight into the served home.
  const other = join(dir, `o${tag}`);
  const o = await setup(other, "Other <other@example.invalid>");
  const full = await runOk(v, `${other}p`, ["--armor", "--export-secret-keys", o.fingerprints[0]!]);
  await runOk(v, home, ["--import"], full.out);
  // A key the agent holds whose public key the served keyring never had: only its key file.
  const loose = join(dir, `l${tag}`);
  const l = await setup(loose, "Loose <loose@example.invalid>");
  const looseGrip = (await loadKeyring(`${loose}p`, v)).primaries[0]!.key.keygrip;
  copyFileSync(
    join(`${loose}p`, "private-keys-v1.d", `${looseGrip}.key`),
    join(home, "private-keys-v1.d", `${looseGrip}.key`),
  );
  void l;

  const ring = await loadKeyring(home, v);
  const served = ring.primaries.find((p) => p.key.uid?.startsWith("Served"))!;
  const otherRing = ring.primaries.find((p) => p.key.uid?.startsWith("Other"))!;
  const real = await agentSockets(home, v);
  const spies = [
    await recordingProxy(join(dir, `x${tag}`), real.extra),
    await recordingProxy(join(dir, `n${tag}`), real.normal),
  ];
  const socket = join(dir, `c${tag}`);
  const srv = await serveSocket(socket, (io) =>
    serveGpg2(io, {
      source: "work",
      gnupgHome: home,
      gpg: v.gpg,
      gpgconf: v.gpgconf,
      confirm: c.confirm,
      audit: c.audit,
      sockets: { extra: spies[0]!.path, normal: spies[1]!.path },
      log: quietLog,
    }),
  );
  return {
    v,
    home,
    socket,
    normal: real.normal,
    spies,
    served: srv,
    subkeys: ring.primaries.flatMap((p) => p.subkeys.map((k) => k.keygrip)),
    unserved: {
      ownPrimary: served.key.keygrip,
      otherPrimary: otherRing.key.keygrip,
      orphan: looseGrip,
      madeUp: "0123456789ABCDEF0123456789ABCDEF01234567",
    },
  };
}

beforeAll(async () => {
  if (VERSIONS.length === 0) return;
  dir = tempDir("ks");
  c = await confirming("approve");
  for (const v of VERSIONS) worlds.push(await makeWorld(v));
}, 180_000);

afterAll(async () => {
  for (const w of worlds) {
    await w.served.close();
    for (const s of w.spies) await s.close();
  }
  await c?.close();
  for (const v of VERSIONS)
    for (const h of ["s", "o", "l"].flatMap((p) => [
      `${p}${v.label.replace(".", "")}`,
      `${p}${v.label.replace(".", "")}p`,
    ]))
      await capture([v.gpgconf, "--homedir", join(dir, h), "--kill", "all"]);
  if (dir) cleanup(dir);
});

/** One session: the greeting, then `lines`, then BYE; returns what came back after the greeting. */
async function ask(w: World, lines: string[]): Promise<string> {
  const got = await assuanSession(w.socket, `${lines.join("\n")}\nBYE\n`);
  await w.served.settled();
  return got.slice(got.indexOf("\n") + 1).replace(/OK closing connection\n$/, "");
}
/** HAVEKEY --list=1000 through the filter, its D data read as raw bytes: the keygrips. */
async function listedKeygrips(w: World): Promise<string[]> {
  const s = await platform.unixConnect(w.socket);
  const parts: Uint8Array[] = [];
  try {
    await s.write(new TextEncoder().encode("HAVEKEY --list=1000\nBYE\n"));
    for (let c = await s.read(); c; c = await s.read()) parts.push(c);
  } finally {
    s.close();
  }
  await w.served.settled();
  const raw = Buffer.concat(parts);
  const grips: string[] = [];
  let i = raw.indexOf(0x0a) + 1; // after the greeting
  for (let nl = raw.indexOf(0x0a, i); nl >= 0 && raw[i] === 0x44; i = nl + 1, nl = raw.indexOf(0x0a, i)) {
    const data = unescapeData(raw.subarray(i + 2, nl));
    for (let j = 0; j < data.length; j += 20)
      grips.push(
        Buffer.from(data.subarray(j, j + 20))
          .toString("hex")
          .toUpperCase(),
      );
  }
  return grips;
}

const toAgent = (w: World) => w.spies.map((s) => s.sent()).join("");

describe.skipIf(VERSIONS.length === 0)("KEYINFO/HAVEKEY cannot reach keys the device does not serve", () => {
  for (const i of [0, 1]) {
    const w = () => worlds[i]!;
    const label = VERSIONS[i]?.label ?? "?";

    test(`agent ${label}: the agent itself holds the other primary and the orphan key (control)`, async () => {
      for (const g of [w().unserved.otherPrimary, w().unserved.orphan]) {
        const got = await assuanSession(w().normal, `KEYINFO ${g}\nBYE\n`);
        expect(got).toContain(`S KEYINFO ${g} D `);
      }
    });

    test(`agent ${label}: KEYINFO <unserved keygrip> is the agent's 'Not found', identical for all, agent not asked`, async () => {
      const before = toAgent(w()).length;
      const answers = new Set<string>();
      for (const g of Object.values(w().unserved)) answers.add(await ask(w(), [`KEYINFO ${g}`]));
      expect([...answers]).toEqual([`${ERR_NOT_FOUND_LINE}\n`]);
      const reached = toAgent(w()).slice(before);
      for (const g of Object.values(w().unserved)) expect(reached.includes(g)).toBe(false);
    });

    test(`agent ${label}: HAVEKEY <unserved keygrips> is 'No secret key', agent not asked`, async () => {
      const before = toAgent(w()).length;
      const grips = Object.values(w().unserved);
      expect(await ask(w(), [`HAVEKEY ${grips.join(" ")}`])).toBe(`${ERR_NO_SECKEY_LINE}\n`);
      for (const g of grips) expect(await ask(w(), [`HAVEKEY ${g}`])).toBe(`${ERR_NO_SECKEY_LINE}\n`);
      expect(toAgent(w()).slice(before).includes("HAVEKEY")).toBe(false);
    });

    test(`agent ${label}: KEYINFO <served subkey> answers (normal socket, works on 2.2 too)`, async () => {
      for (const g of w().subkeys)
        expect(await ask(w(), [`KEYINFO ${g}`])).toMatch(new RegExp(`^S KEYINFO ${g} D .*\\nOK\\n$`));
    });

    test(`agent ${label}: HAVEKEY --list=1000 and KEYINFO --list name the served subkeys only`, async () => {
      const grips = await listedKeygrips(w());
      expect(grips.sort()).toEqual([...w().subkeys].sort());
      const info = await ask(w(), ["KEYINFO --list"]);
      const named = [...info.matchAll(/^S KEYINFO ([0-9A-F]{40}) /gm)].map((m) => m[1]!);
      expect(named.sort()).toEqual([...w().subkeys].sort());
    });

    test(`agent ${label}: SIGKEY/SETKEY on an unserved key is filtered (cannot act on it)`, async () => {
      const before = toAgent(w()).length;
      for (const cmd of ["SIGKEY", "SETKEY"])
        for (const g of [w().unserved.otherPrimary, w().unserved.orphan])
          expect(await ask(w(), [`${cmd} ${g}`])).toBe(`${ERR_FILTERED_LINE}\n`);
      expect(
        toAgent(w())
          .slice(before)
          .match(/SIGKEY|SETKEY/),
      ).toBeNull();
    });
  }
});
