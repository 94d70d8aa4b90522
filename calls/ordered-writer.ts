/**
 * Serialises writes of whole messages to one stream. Channel.write() may suspend mid-message
 * (waiting for credit); two producers writing to the same channel (stdout and stderr pumps)
 * would then interleave their bytes and break the message framing. Each write here starts only
 * after the previous one finished.
 */
export class OrderedWriter {
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly write: (data: Uint8Array) => Promise<void>) {}

  send(message: Uint8Array): Promise<void> {
    return this.run(() => this.write(message));
  }

  /** Runs `task` (which writes one whole message its own way) in turn with the sends. */
  run(task: () => Promise<void>): Promise<void> {
    const next = this.tail.then(task);
    this.tail = next.catch(() => {});
    return next;
  }

  /** Resolves when every message queued so far was written (or failed). */
  flushed(): Promise<void> {
    return this.tail;
  }
}
