import { expect, test } from "bun:test";
import { streamContract } from "../test/helpers/stream-contract.ts";
import { memoryPair } from "./memory.ts";
import { TransportError } from "./transport.ts";

streamContract({
  name: "memory pair",
  pair: async () => memoryPair({ bufferBytes: 64 * 1024 }),
  halfClose: true,
  peerCloseEof: true,
  stallBound: 64 * 1024 + 1,
});

test("buffering is bounded by bufferBytes plus one write", async () => {
  const [a, b] = memoryPair({ bufferBytes: 1000 });
  await a.write(new Uint8Array(999)); // below the limit: resolves at once
  let done = false;
  const w = a.write(new Uint8Array(10)).then(() => {
    done = true;
  });
  await Promise.resolve();
  expect(done).toBe(false);
  expect((await b.read())!.length).toBe(999); // drained below half: the writer may go on
  await w;
  expect((await b.read())!.length).toBe(10);
});

test("writes are copied: the caller may reuse its buffer at once", async () => {
  const [a, b] = memoryPair();
  const buf = new Uint8Array([1, 2, 3]);
  await a.write(buf);
  buf.fill(9);
  expect(await b.read()).toEqual(new Uint8Array([1, 2, 3]));
});

test("writing to a closed peer fails like EPIPE", async () => {
  const [a, b] = memoryPair();
  b.close();
  const e = await a.write(new Uint8Array(1)).catch((x) => x);
  expect(e).toBeInstanceOf(TransportError);
  expect(e.code).toBe("EPIPE");
  expect(await a.read()).toBeNull();
  await a.closed;
});
