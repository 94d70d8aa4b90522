/** The flasher's progress line: rate, ETA, and how often it is drawn on a terminal and in logs. */
import { expect, test } from "bun:test";
import { formatDuration, formatProgress, ProgressReporter } from "../../images/flash-progress.ts";

test("formatProgress shows bytes, percent, rate and ETA", () => {
  expect(formatProgress({ phase: "write", done: 1_000_000_000, total: 4_000_000_000 }, 20_000)).toBe(
    "writing 1.0 GB / 4.0 GB  25%  50.0 MB/s  ETA 1:00",
  );
  expect(formatProgress({ phase: "verify", done: 0, total: 10 }, 0)).toBe(
    "verifying 0 B / 10 B  0%  0 B/s  ETA ?",
  );
  expect(formatDuration(3725)).toBe("1:02:05");
});

test("in logs a line per 10%; on a terminal a redrawn line at most every 250 ms", () => {
  let t = 0;
  const log: string[] = [];
  const r = new ProgressReporter(
    (s) => log.push(s),
    false,
    () => t,
  );
  for (let done = 1; done <= 100; done++) {
    t += 10;
    r.update({ phase: "write", done, total: 100 });
  }
  expect(log.length).toBe(11); // 0%..90% and 100%
  expect(log.every((l) => l.endsWith("\n"))).toBe(true);

  const tty: string[] = [];
  const rt = new ProgressReporter(
    (s) => tty.push(s),
    true,
    () => t,
  );
  for (let done = 1; done <= 100; done++) {
    t += 10;
    rt.update({ phase: "write", done, total: 100 });
  }
  rt.end();
  expect(tty.filter((s) => s.startsWith("\r")).length).toBe(5); // first, every 250 ms, and the last
  expect(tty.at(-1)).toBe("\n");
});
