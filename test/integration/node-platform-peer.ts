/**
 * The Node side of test/integration/node-platform.test.ts: bundled with
 * `bun build --target=node` exactly like the Armory agent and run on Node, it exercises the same
 * transport/ and platform/ sources there. Prints one JSON line per event on stdout.
 *
 *   echo-tcp                 listen on 127.0.0.1:0, print {port}, echo every connection
 *   echo-serial PATH         open PATH as a serial line, print {ready}, echo until the line goes
 *   selfcheck DIR            run platform checks under Node, print {results}
 *
 * Must never be imported by production code.
 */

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { join } from "node:path";
import { ptyPair } from "../../fixtures/pty.ts";
import { exitStatusOf, platform } from "../../platform/index.ts";
import { openSerial } from "../../transport/serial.ts";
import { tcpListen } from "../../transport/tcp.ts";
import type { ByteSource, ByteStream } from "../../transport/transport.ts";

const say = (o: object) => console.log(JSON.stringify(o));

async function echo(s: ByteStream): Promise<void> {
  for (let c = await s.read(); c; c = await s.read()) await s.write(c);
  await s.closeWrite();
  s.close();
}

async function readText(s: ByteSource): Promise<string> {
  let out = "";
  for (let c = await s.read(); c; c = await s.read()) out += new TextDecoder().decode(c);
  return out;
}

const checks: Record<string, (dir: string) => Promise<unknown>> = {
  runtime: async () => ({ platform: platform.name, node: process.versions.node, bun: "Bun" in globalThis }),
  async catRoundTrip() {
    const c = await platform.spawn(["cat"], { stderr: "ignore" });
    const data = platform.randomBytes(2 * 1024 * 1024);
    const out = (async () => {
      const h = createHash("sha256");
      for (let x = await c.stdout!.read(); x; x = await c.stdout!.read()) h.update(x);
      return h.digest("hex");
    })();
    for (let i = 0; i < data.length; i += 65536) await c.stdin!.write(data.subarray(i, i + 65536));
    await c.stdin!.closeWrite();
    return (await out) === createHash("sha256").update(data).digest("hex") && (await c.exited).code === 0;
  },
  async signalStatus() {
    const c = await platform.spawn(["sleep", "30"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    c.kill("SIGTERM");
    return exitStatusOf(await c.exited);
  },
  async missingProgram() {
    return platform.spawn(["/nonexistent/x"]).then(
      () => "started",
      (e) => `${e.name} ${e.code}`,
    );
  },
  async atomicWrite(dir) {
    const f = join(dir, "f");
    await platform.writeFileAtomic(f, "one", 0o640);
    await platform.writeFileAtomic(f, "two", 0o640);
    return [
      fs.readFileSync(f, "utf8"),
      (await platform.stat(f))!.mode.toString(8),
      fs.readdirSync(dir).length,
    ];
  },
  async unixHalfClose(dir) {
    const path = join(dir, "s.sock");
    const l = await platform.unixListen(path, (s) => void echo(s));
    const c = await platform.unixConnect(path);
    await c.write(new TextEncoder().encode("over unix"));
    await c.closeWrite();
    const got = await readText(c);
    c.close();
    await l.close();
    return got;
  },
  async serialReopen() {
    // The Node tty reader (libuv) must not leave a read behind that swallows later bytes.
    const pty = await ptyPair();
    try {
      const b = await openSerial(pty.b, { platform });
      const first = await openSerial(pty.a, { platform });
      await b.write(new TextEncoder().encode("warm"));
      await first.read();
      const pending = first.read();
      first.close();
      await pending;
      await b.write(new TextEncoder().encode("after-close"));
      const again = await openSerial(pty.a, { platform });
      let text = "";
      while (text.length < 11) text += new TextDecoder().decode((await again.read())!);
      const idle = process.cpuUsage();
      const r = again.read();
      await new Promise((res) => setTimeout(res, 300));
      const used = process.cpuUsage(idle);
      again.close();
      await r;
      b.close();
      return { text, idleCpuMs: Math.round((used.user + used.system) / 1000) };
    } finally {
      await pty.close();
    }
  },
};

const [cmd, arg] = process.argv.slice(2);
if (cmd === "echo-tcp") {
  const l = await tcpListen("127.0.0.1", 0, (s) => void echo(s));
  say({ port: l.port });
} else if (cmd === "echo-serial") {
  const s = await openSerial(arg!, { platform });
  say({ ready: true });
  await echo(s);
  say({ eof: true });
} else if (cmd === "selfcheck") {
  const results: Record<string, unknown> = {};
  for (const [name, check] of Object.entries(checks)) {
    const dir = fs.mkdtempSync(join(arg!, `${name}-`));
    results[name] = await check(dir).catch((e) => `error: ${e?.stack ?? e}`);
  }
  say({ results });
} else {
  console.error(`usage: node peer.mjs echo-tcp | echo-serial PATH | selfcheck DIR (got ${cmd})`);
  process.exit(2);
}
