import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ByteQueue } from "./byte-queue.ts";
import { concatBytes } from "./bytes.ts";
import { AssertionError } from "./errors.ts";

type Op = { push: Uint8Array } | { take: number } | { skip: number };

describe("ByteQueue", () => {
  test("any interleaving of push, take and skip: the same bytes as a plain joined array, and every view handed out stays as it was", () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((push) => ({ push })),
      fc.nat(400).map((take) => ({ take })),
      fc.nat(400).map((skip) => ({ skip })),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const q = new ByteQueue();
        let model: Uint8Array = new Uint8Array(0);
        const handedOut: [Uint8Array, Uint8Array][] = [];
        for (const o of ops) {
          if ("push" in o) {
            q.push(o.push);
            model = concatBytes([model, o.push]);
          } else {
            const n = Math.min("take" in o ? o.take : o.skip, model.length);
            if ("take" in o) {
              const view = q.take(n);
              expect(view).toEqual(model.subarray(0, n));
              handedOut.push([view, view.slice()]);
            } else q.skip(n);
            model = model.slice(n);
          }
          expect(q.length).toBe(model.length);
          expect(q.peek()).toEqual(model);
        }
        for (const [view, copy] of handedOut) expect(view).toEqual(copy);
      }),
    );
  });

  test("a pushed chunk is never written to", () => {
    const q = new ByteQueue();
    const a = Uint8Array.of(1, 2, 3);
    q.push(a); // adopted: nothing was held
    q.push(Uint8Array.of(4, 5));
    q.skip(1);
    q.push(Uint8Array.of(6));
    expect(a).toEqual(Uint8Array.of(1, 2, 3));
    expect(q.take(5)).toEqual(Uint8Array.of(2, 3, 4, 5, 6));
  });

  test("a frame sent a byte at a time costs linear copying, not quadratic", () => {
    // Counted, not timed: the bytes copied into the queue's buffers while 256 KiB arrive singly.
    const q = new ByteQueue();
    const size = 256 * 1024;
    let copied = 0;
    const set = Uint8Array.prototype.set;
    Uint8Array.prototype.set = function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
      copied += src.length;
      return set.call(this, src, offset);
    };
    try {
      for (let i = 0; i < size; i++) q.push(Uint8Array.of(i & 0xff));
    } finally {
      Uint8Array.prototype.set = set;
    }
    expect(q.length).toBe(size);
    expect(copied).toBeGreaterThanOrEqual(size - 1); // every byte but the adopted first is copied in
    expect(copied).toBeLessThan(4 * size); // quadratic would be ~size²/2 = 3.4e10
  });

  test("taking or skipping more than is held is a bug (assert)", () => {
    const q = new ByteQueue();
    q.push(Uint8Array.of(1));
    expect(() => q.take(2)).toThrow(AssertionError);
    expect(() => q.skip(-1)).toThrow(AssertionError);
  });
});
