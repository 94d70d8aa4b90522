/**
 * Unit tests of one vchan channel (channel.ts) against a fake multiplexer: chunking, credit
 * accounting in both directions, EOF per direction, reset, and the end of the session.
 */
import { describe, expect, test } from "bun:test";
import { AssertionError, ProtocolError } from "../errors.ts";
import { VCHAN_WINDOW_BYTES } from "../wire/limits.ts";
import { Channel, type ChannelHost, ChannelResetError } from "./channel.ts";
import { ResetReason, VchanType } from "./messages.ts";

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
const QUARTER = VCHAN_WINDOW_BYTES / 4;

class FakeHost implements ChannelHost {
  readonly data: number[] = [];
  readonly control: [type: number, value: number][] = [];
  released = 0;
  constructor(readonly maxChunk = 1 << 20) {}
  readonly bytes: Uint8Array[] = [];
  async sendData(_id: number, data: Uint8Array, prefix = new Uint8Array(0)): Promise<void> {
    this.data.push(prefix.length + data.length);
    this.bytes.push(Buffer.concat([prefix, data]));
  }
  async sendControl(_id: number, type: number, value = 0): Promise<void> {
    this.control.push([type, value]);
  }
  release(): void {
    this.released++;
  }
  get sentBytes(): number {
    return this.data.reduce((a, b) => a + b, 0);
  }
}

function channel(maxChunk?: number): [Channel, FakeHost] {
  const host = new FakeHost(maxChunk);
  return [new Channel(3, "test", host), host];
}

describe("sending", () => {
  test("write splits data into chunks of at most the multiplexer's maxChunk", async () => {
    const [ch, host] = channel(1000);
    await ch.write(new Uint8Array(2500));
    expect(host.data).toEqual([1000, 1000, 500]);
  });

  test("a writer stops at the peer's window and goes on only as the peer grants CREDIT", async () => {
    const [ch, host] = channel();
    let done = false;
    const writing = ch.write(new Uint8Array(VCHAN_WINDOW_BYTES + 10)).then(() => {
      done = true;
    });
    await flush();
    expect(host.sentBytes).toBe(VCHAN_WINDOW_BYTES);
    expect(done).toBe(false);
    ch.onCredit(4);
    await flush();
    expect(host.sentBytes).toBe(VCHAN_WINDOW_BYTES + 4);
    expect(done).toBe(false);
    ch.onCredit(6);
    await writing;
    expect(host.sentBytes).toBe(VCHAN_WINDOW_BYTES + 10);
  });

  test("credit that would take the window past its size is a flow-control fault", () => {
    const [ch] = channel();
    expect(() => ch.onCredit(1)).toThrow(expect.objectContaining({ code: "flow-control" }));
  });

  test("closeWrite sends one EOF; a write after it is channel-state", async () => {
    const [ch, host] = channel();
    await ch.closeWrite();
    await ch.closeWrite();
    expect(host.control).toEqual([[VchanType.EOF, 0]]);
    await expect(ch.write(Uint8Array.of(1))).rejects.toMatchObject({ code: "channel-state" });
  });
});

describe("receiving", () => {
  test("a reader that does not read lets the peer fill the window, and one byte more is flow-control", () => {
    const [ch] = channel();
    for (let n = 0; n < 8; n++) ch.onData(new Uint8Array(VCHAN_WINDOW_BYTES / 8));
    expect(() => ch.onData(Uint8Array.of(1))).toThrow(expect.objectContaining({ code: "flow-control" }));
  });

  test("reading grants CREDIT in quarter windows, and granted bytes may be sent again", async () => {
    const [ch, host] = channel();
    for (let n = 0; n < 8; n++) ch.onData(new Uint8Array(VCHAN_WINDOW_BYTES / 8));
    await ch.read();
    expect(host.control).toEqual([]);
    await ch.read();
    expect(host.control).toEqual([[VchanType.CREDIT, QUARTER]]);
    expect(() => ch.onData(new Uint8Array(QUARTER))).not.toThrow();
    expect(() => ch.onData(Uint8Array.of(1))).toThrow(expect.objectContaining({ code: "flow-control" }));
  });

  test("data arrives in order; a waiting reader gets it at once", async () => {
    const [ch] = channel();
    const first = ch.read();
    ch.onData(Uint8Array.of(1));
    ch.onData(Uint8Array.of(2));
    expect(await first).toEqual(Uint8Array.of(1));
    expect(await ch.read()).toEqual(Uint8Array.of(2));
  });

  test("EOF: queued data first, then null; data after EOF and a second EOF are channel-state", async () => {
    const [ch] = channel();
    ch.onData(Uint8Array.of(1));
    ch.onEof();
    expect(await ch.read()).toEqual(Uint8Array.of(1));
    expect(await ch.read()).toBeNull();
    expect(await ch.read()).toBeNull();
    expect(() => ch.onData(Uint8Array.of(2))).toThrow(expect.objectContaining({ code: "channel-state" }));
    expect(() => ch.onEof()).toThrow(expect.objectContaining({ code: "channel-state" }));
  });

  test("a waiting reader gets null at EOF", async () => {
    const [ch] = channel();
    const waiting = ch.read();
    ch.onEof();
    expect(await waiting).toBeNull();
  });

  test("two reads at once are our bug (assert)", () => {
    const [ch] = channel();
    void ch.read();
    expect(() => ch.read()).toThrow(AssertionError);
  });
});

describe("end states", () => {
  test("EOF both ways releases the channel and resolves closed", async () => {
    const [ch, host] = channel();
    ch.onEof();
    expect(await ch.read()).toBeNull();
    expect(host.released).toBe(0);
    await ch.closeWrite();
    await ch.closed;
    expect(host.released).toBe(1);
  });

  test("a local reset sends RESET once, fails the waiting reader and writer, and drops later data", async () => {
    const [ch, host] = channel();
    const reading = ch.read().catch((e: unknown) => e);
    const writing = ch.write(new Uint8Array(VCHAN_WINDOW_BYTES + 1)).catch((e: unknown) => e);
    await flush();
    ch.reset(ResetReason.ERROR);
    ch.close();
    expect(host.control).toEqual([[VchanType.RESET, ResetReason.ERROR]]);
    expect(await reading).toEqual(new ChannelResetError(ResetReason.ERROR));
    expect(await writing).toBeInstanceOf(ChannelResetError);
    ch.onData(Uint8Array.of(1)); // crossed our reset: dropped, not queued
    await expect(ch.read()).rejects.toBeInstanceOf(ChannelResetError);
    await ch.closed;
    expect(host.released).toBe(1);
  });

  test("a reset from the peer fails both directions with its reason and sends nothing back", async () => {
    const [ch, host] = channel();
    ch.onReset(ResetReason.REFUSED);
    await expect(ch.read()).rejects.toMatchObject({ reason: ResetReason.REFUSED });
    await expect(ch.write(Uint8Array.of(1))).rejects.toMatchObject({ reason: ResetReason.REFUSED });
    ch.close();
    expect(host.control).toEqual([]);
  });

  test("after both EOFs, close() sends no RESET", async () => {
    const [ch, host] = channel();
    ch.onEof();
    await ch.closeWrite();
    ch.close();
    expect(host.control).toEqual([[VchanType.EOF, 0]]);
  });

  test("the end of the session fails the channel with the session's error", async () => {
    const [ch] = channel();
    const reading = ch.read().catch((e: unknown) => e);
    const error = new Error("session gone");
    ch.onSessionEnd(error);
    expect(await reading).toBe(error);
    await expect(ch.write(Uint8Array.of(1))).rejects.toBe(error);
  });
});

describe("writeJoined (a call's output message: header + payload)", () => {
  const header = Uint8Array.of(1, 0, 0, 0, 4);
  const payload = Uint8Array.of(9, 8, 7, 6);

  test("with credit: one DATA record of header then payload, credit charged for both", async () => {
    const [ch, host] = channel(1000);
    await ch.writeJoined(header, payload);
    expect(host.bytes).toEqual([Uint8Array.of(1, 0, 0, 0, 4, 9, 8, 7, 6)]);
    await ch.write(new Uint8Array(VCHAN_WINDOW_BYTES - 9));
    expect(host.sentBytes).toBe(VCHAN_WINDOW_BYTES); // the 9 bytes counted against the window
  });

  test("short of credit or over the chunk size: the same bytes, split as write() splits them", async () => {
    const [ch, host] = channel(6);
    await ch.writeJoined(header, payload);
    expect(host.data).toEqual([6, 3]);
    expect(Buffer.concat(host.bytes)).toEqual(Buffer.from([1, 0, 0, 0, 4, 9, 8, 7, 6]));
    const [full, fullHost] = channel();
    await full.write(new Uint8Array(VCHAN_WINDOW_BYTES - 4));
    const pending = full.writeJoined(header, payload); // 4 bytes of credit left, 9 needed
    await flush();
    expect(fullHost.sentBytes).toBe(VCHAN_WINDOW_BYTES);
    full.onCredit(QUARTER);
    await pending;
    expect(Buffer.concat(fullHost.bytes).subarray(-9)).toEqual(Buffer.from([1, 0, 0, 0, 4, 9, 8, 7, 6]));
  });

  test("after EOF or a reset it throws like write()", async () => {
    const [ch] = channel();
    await ch.closeWrite();
    await expect(ch.writeJoined(header, payload)).rejects.toBeInstanceOf(ProtocolError);
    const [reset] = channel();
    reset.onReset(ResetReason.CANCELLED);
    await expect(reset.writeJoined(header, payload)).rejects.toBeInstanceOf(ChannelResetError);
  });
});
