/** sys-remote's board of device prompts: journal, notification, pending list, watchers. */
import { describe, expect, test } from "bun:test";
import type { Announcement } from "../../core/qrexec/announcement.ts";
import {
  MAX_WATCHERS,
  PROMPT_STALE_MS,
  PROMPTS_PER_REMOTE,
  PromptBoard,
  type WatchedEvent,
} from "./prompts.ts";

const A: Announcement = {
  event: "waiting",
  id: 4,
  code: "K7QD",
  client: "work",
  service: "qubes.Gpg2",
  operation: "PKSIGN",
  key: "Dev [ABCD]",
  detail: "sha256 01234567...89ABCDEF",
};

function board(now = { ms: 1_000 }) {
  const logs: string[] = [];
  const notes: [string, string, boolean][] = [];
  const b = new PromptBoard({
    log: (m) => logs.push(m),
    notify: (s, body, urgent) => notes.push([s, body, urgent]),
    nowMs: () => now.ms,
  });
  return { b, logs, notes, now };
}

describe("the prompt board", () => {
  test("waiting then approved: journal, notification and list, all with the request code", () => {
    const { b, logs, notes } = board();
    b.announced("pi", A);
    expect(b.list().map((p) => p.announcement.code)).toEqual(["K7QD"]);
    b.announced("pi", { ...A, event: "approved" });
    expect(b.list()).toEqual([]);
    expect(logs).toEqual([
      "pi: waiting for a press [K7QD] #4: work asks for PKSIGN (qubes.Gpg2) with Dev [ABCD] sha256 01234567...89ABCDEF",
      "pi: approved [K7QD] #4: work asks for PKSIGN (qubes.Gpg2) with Dev [ABCD] sha256 01234567...89ABCDEF",
    ]);
    expect(notes).toEqual([
      [
        "pi: waiting for a press [K7QD]",
        "work asks for PKSIGN (qubes.Gpg2) with Dev [ABCD] sha256 01234567...89ABCDEF",
        true,
      ],
      [
        "pi: approved [K7QD]",
        "work asks for PKSIGN (qubes.Gpg2) with Dev [ABCD] sha256 01234567...89ABCDEF",
        false,
      ],
    ]);
  });

  test("watchers see only their own device, client and service; an ended watch sees nothing", () => {
    const { b } = board();
    const seen: WatchedEvent[] = [];
    const other: WatchedEvent[] = [];
    const stop = b.watch({ remote: "pi", client: "work", service: "qubes.Gpg2", tell: (e) => seen.push(e) });
    b.watch({ remote: "pi", client: "personal", service: "qubes.Gpg2", tell: (e) => other.push(e) });
    b.announced("pi", A);
    b.announced("pi2", A);
    b.announced("pi", { ...A, service: "qubes.Gpg" });
    b.announced("pi", { ...A, event: "timeout" });
    expect(seen.map((e) => [e.event, e.code])).toEqual([
      ["waiting", "K7QD"],
      ["timeout", "K7QD"],
    ]);
    expect(seen[1]!.line).toStartWith("pi: expired [K7QD] #4:");
    expect(other).toEqual([]);
    stop!();
    b.announced("pi", A);
    expect(seen.length).toBe(2);
  });

  test("a watch that starts after its prompt began waiting is told of it at once", () => {
    const { b } = board();
    b.announced("pi", A);
    b.announced("pi", { ...A, id: 5, code: "2222", client: "personal" });
    const seen: WatchedEvent[] = [];
    b.watch({ remote: "pi", client: "work", service: "qubes.Gpg2", tell: (e) => seen.push(e) });
    expect(seen.map((e) => [e.event, e.code])).toEqual([["waiting", "K7QD"]]);
  });

  test("bounded: prompts per device, stale prompts, watchers", () => {
    const { b, now } = board();
    for (let i = 0; i < PROMPTS_PER_REMOTE + 5; i++) b.announced("pi", { ...A, id: i });
    expect(b.list().length).toBe(PROMPTS_PER_REMOTE);
    now.ms += PROMPT_STALE_MS + 1;
    expect(b.list()).toEqual([]);
    const stops = [];
    for (let i = 0; i < MAX_WATCHERS; i++)
      stops.push(b.watch({ remote: "pi", client: "work", service: "s.S", tell: () => {} }));
    expect(stops.every((s) => s !== null)).toBe(true);
    expect(b.watch({ remote: "pi", client: "work", service: "s.S", tell: () => {} })).toBeNull();
  });
});
