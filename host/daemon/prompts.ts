/**
 * What sys-remote does with a device's announcement once decoded (announcements.ts): the journal
 * line, the desktop notification (notify.ts), the board of prompts still waiting (for
 * `qubes-air list`), and the watchers: each relay that runs a call from a client qube to a
 * device watches its own (device, client, service) and writes the lines to the caller's stderr
 * (host/relay/relay.ts). Every event goes to all of these, approvals above all (a stolen press
 * shows; docs/threat-model.md).
 * Must never: hold more than PROMPTS_PER_REMOTE prompts per device or MAX_WATCHERS watchers, or
 * let one watcher that stalls hold up the others or the journal.
 */
import {
  type Announcement,
  describeAnnounced,
  EVENT_WORDS,
  formatAnnouncement,
} from "../../core/qrexec/announcement.ts";

/** A device shows one prompt at a time; a few more cover announcements lost on the way. */
export const PROMPTS_PER_REMOTE = 8;
/**
 * A waiting prompt whose decision was never announced (the link went down) leaves the board
 * after this: the device's own timeout is at most 120 s (agent confirmTimeoutSeconds).
 */
export const PROMPT_STALE_MS = 180_000;
/** Relays watching at once: one per call in flight to a device; more are refused. */
export const MAX_WATCHERS = 256;

export interface PendingPrompt {
  readonly remote: string;
  readonly announcement: Announcement;
  readonly sinceMs: number;
}

/** What a watcher is told: the event, its request code, and the line to show. */
export interface WatchedEvent {
  readonly event: Announcement["event"];
  readonly code: string;
  readonly line: string;
}

export interface Watch {
  readonly remote: string;
  readonly client: string;
  readonly service: string;
  readonly tell: (e: WatchedEvent) => void;
}

export interface PromptBoardOptions {
  readonly log: (message: string) => void;
  /** The desktop notification (notify.ts); must not throw. */
  readonly notify?: (summary: string, body: string, urgent: boolean) => void;
  readonly nowMs?: () => number;
}

export class PromptBoard {
  private readonly pending = new Map<string, PendingPrompt[]>();
  private readonly watchers = new Set<Watch>();
  private readonly now: () => number;

  constructor(private readonly o: PromptBoardOptions) {
    this.now = o.nowMs ?? (() => Date.now());
  }

  /** One decoded announcement from `remote`: journal, notification, board, watchers. */
  announced(remote: string, a: Announcement): void {
    this.o.log(formatAnnouncement(remote, a));
    this.track(remote, a);
    this.o.notify?.(
      `${remote}: ${EVENT_WORDS[a.event]} [${a.code}]`,
      describeAnnounced(a),
      a.event === "waiting",
    );
    const told: WatchedEvent = { event: a.event, code: a.code, line: formatAnnouncement(remote, a) };
    for (const w of this.watchers) {
      if (w.remote === remote && w.client === a.client && w.service === a.service) w.tell(told);
    }
  }

  /** Prompts still waiting for a press, oldest first. */
  list(): PendingPrompt[] {
    const cutoff = this.now() - PROMPT_STALE_MS;
    const out: PendingPrompt[] = [];
    for (const [remote, prompts] of this.pending) {
      const fresh = prompts.filter((p) => p.sinceMs > cutoff);
      if (fresh.length === 0) this.pending.delete(remote);
      else this.pending.set(remote, fresh);
      out.push(...fresh);
    }
    return out.sort((a, b) => a.sinceMs - b.sinceMs);
  }

  /**
   * Starts a watch; the function returned ends it. null when there are too many. The watcher is
   * told at once of the prompts already waiting for it (the relay starts watching just after its
   * call went out, so the call's prompt may already be here).
   */
  watch(w: Watch): (() => void) | null {
    if (this.watchers.size >= MAX_WATCHERS) return null;
    this.watchers.add(w);
    for (const p of this.list()) {
      const a = p.announcement;
      if (p.remote === w.remote && a.client === w.client && a.service === w.service)
        w.tell({ event: a.event, code: a.code, line: formatAnnouncement(p.remote, a) });
    }
    return () => this.watchers.delete(w);
  }

  private track(remote: string, a: Announcement): void {
    const prompts = (this.pending.get(remote) ?? []).filter((p) => p.announcement.id !== a.id);
    if (a.event === "waiting") {
      prompts.push({ remote, announcement: a, sinceMs: this.now() });
      while (prompts.length > PROMPTS_PER_REMOTE) prompts.shift();
    }
    if (prompts.length === 0) this.pending.delete(remote);
    else this.pending.set(remote, prompts);
  }
}
