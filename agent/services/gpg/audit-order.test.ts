/**
 * The audit ordering of the split-GPG services with real GnuPG (test/fixtures/gpg): the request
 * record is written before PKSIGN reaches gpg-agent (qubes.Gpg2) and before gpg starts
 * (qubes.Gpg); with an injected audit writer that fails, an approved request is refused and
 * nothing reaches gpg-agent or gpg.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { AuditRecord } from "../../../core/audit/record.ts";
import { ERR_UNAUDITED_LINE } from "../../../core/gpg/assuan-filter.ts";
import {
  type Confirming,
  cleanup,
  confirming,
  type Device,
  gpg,
  killAgents,
  makeDevice,
  quietLog,
  recordingGpg,
} from "../../../test/fixtures/gpg/env.ts";
import { gpg2Stack, type Stack } from "../../../test/fixtures/gpg/stack.ts";
import { v1Call } from "../../../test/fixtures/gpg/v1-client.ts";
import { type AuditEntry, AuditWriteError, type AuditWriter } from "../audit/log.ts";
import { serveGpg1 } from "./gpg1-service.ts";

setDefaultTimeout(60_000);

/** An audit writer that can be made to fail, and notes what the world looked like at each append. */
class ProbeWriter implements AuditWriter {
  failing = false;
  readonly seen: string[] = [];
  constructor(private readonly probe: () => string) {}
  append(entry: AuditEntry): Promise<AuditRecord> {
    this.seen.push(`${entry.result}:${this.probe()}`);
    if (this.failing) return Promise.reject(new AuditWriteError("ENOSPC"));
    return Promise.resolve({ seq: this.seen.length } as AuditRecord);
  }
  noteUnrecorded(): void {}
}

let device: Device;
let c: Confirming;

beforeAll(async () => {
  device = await makeDevice();
  c = await confirming("approve");
}, 60_000);

afterAll(async () => {
  await c?.close();
  if (!device) return;
  await killAgents(device.served, device.primary);
  cleanup(device.dir);
});

describe("qubes.Gpg2: the request record before PKSIGN is forwarded", () => {
  let stack: Stack;
  let writer: ProbeWriter;
  beforeAll(async () => {
    // What gpg-agent has seen at each append: how many PKSIGN commands.
    writer = new ProbeWriter(() => `${stack.spy.sent().split("PKSIGN").length - 1}`);
    stack = await gpg2Stack(device, c, { ctx: { audit: writer } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  test("written: held until the request record is on disk, forwarded, then the result", async () => {
    const r = await gpg(stack.client, ["--armor", "--detach-sign"], "ordered\n");
    expect(r.status).toBe(0);
    expect(writer.seen).toEqual(["requested:0", "ok:1"]);
  });

  test("unwritable: the client gets Not operational and gpg-agent never sees PKSIGN", async () => {
    writer.failing = true;
    const r = await gpg(stack.client, ["--armor", "--detach-sign"], "refused\n");
    expect(r.status).not.toBe(0);
    expect(r.err).toContain("Not operational");
    expect(ERR_UNAUDITED_LINE).toContain("Not operational");
    expect(stack.spy.sent().split("PKSIGN").length - 1).toBe(1);
    expect(writer.seen.slice(2)).toEqual(["requested:1"]);
    writer.failing = false;
  });
});

describe("qubes.Gpg (v1): the request record before gpg starts", () => {
  test("written: before the signing gpg runs; unwritable: gpg never runs, exit 1 and a message", async () => {
    const rec = recordingGpg(device.dir);
    const signs = () =>
      readFileSync(rec.log, "utf8")
        .split("\n")
        .filter((l) => l.includes("--detach-sign")).length;
    const writer = new ProbeWriter(() => `${signs()}`);
    const serve = (io: Parameters<typeof serveGpg1>[0]) =>
      serveGpg1(io, {
        source: "work",
        gnupgHome: device.served,
        confirm: c.confirm,
        audit: writer,
        gpg: rec.path,
        log: quietLog,
      });
    const stdin = new TextEncoder().encode("v1 ordered\n");
    const ok = await v1Call(serve, { args: ["-b", "-a"], stdin });
    expect(ok.exit).toBe(0);
    expect(writer.seen).toEqual(["requested:0", "exit 0:1"]);

    writer.failing = true;
    const refused = await v1Call(serve, { args: ["-b", "-a"], stdin });
    expect(refused.exit).toBe(1);
    expect(refused.outputs.join("")).toContain("the device cannot write its audit log");
    expect(signs()).toBe(1);
  });
});
