/**
 * Unit test of agent/link/gc-pacing.ts: the paced stream is the same stream byte for byte, and
 * the collections follow the byte count and the interval.
 */
import { expect, test } from "bun:test";
import { duplexPair } from "../../test/helpers/duplex-pair.ts";
import { gcPacer } from "./gc-pacing.ts";

test("bytes pass unchanged both ways; a collection after the byte count, at most one per interval", async () => {
  let t = 0;
  let collections = 0;
  const pacer = gcPacer(
    () => collections++,
    () => t,
    100,
    1000,
  );
  const [a, b] = duplexPair();
  const s = pacer.paced(a);
  const block = Uint8Array.from({ length: 60 }, (_, i) => i);
  await s.write(block);
  expect(await b.read()).toEqual(block);
  expect(collections).toBe(0); // 60 < 100
  await b.write(block);
  expect(await s.read()).toEqual(block);
  expect(collections).toBe(1); // 120 counted, both directions
  for (let i = 0; i < 5; i++) await s.write(block);
  expect(collections).toBe(1); // the interval has not passed
  t = 1000;
  await s.write(block);
  expect(collections).toBe(2); // the count carried over; now the interval allows it
  await s.write(block);
  expect(collections).toBe(2); // the count restarted at the last collection
  s.close();
  expect(a.eof).toBe(true); // close() reaches the stream underneath
});
