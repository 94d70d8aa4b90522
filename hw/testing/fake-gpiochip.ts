/**
 * A simulated GPIO v2 kernel behind GpioSyscalls, for tests of hw/gpio-chardev.ts: chips with
 * labels and named lines, line requests (checked for the flags a button needs), and an event
 * queue that tests fill with edges. It decodes our own request encoding, so it checks the button
 * logic, not the struct layout (that is checked against <linux/gpio.h> in gpio-uapi.test.ts).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GpioSyscalls } from "../gpio-chardev.ts";
import {
  encodeChipInfo,
  encodeLineEvent,
  GPIO_GET_CHIPINFO_IOCTL,
  GPIO_V2_GET_LINE_IOCTL,
  GPIO_V2_GET_LINEINFO_IOCTL,
  LineFlag,
  SIZEOF,
} from "../gpio-uapi.ts";

export interface FakeChip {
  label: string;
  lines: string[];
  /** Offsets already used by someone else (consumer name). */
  used?: Record<number, string>;
}

export interface FakeRequest {
  offset: number;
  flags: bigint;
  debounceUs: number;
  consumer: string;
}

function errno(code: string): Error {
  return Object.assign(new Error(code), { code });
}

export class FakeGpioKernel implements GpioSyscalls {
  readonly devDir: string;
  readonly requests: FakeRequest[] = [];
  /** Rejects debounce with EINVAL, as a pre-5.10 kernel would. */
  rejectDebounce = false;
  private nextFd = 100;
  private readonly fds = new Map<number, { chip?: number; line?: number; nonblocking: boolean }>();
  private readonly queue: Uint8Array[] = [];
  private seq = 0;

  constructor(private readonly chips: FakeChip[]) {
    this.devDir = mkdtempSync(join(tmpdir(), "qa-fake-dev-"));
    for (let i = 0; i < chips.length; i++) writeFileSync(join(this.devDir, `gpiochip${i}`), "");
    mkdirSync(join(this.devDir, "not-a-chip"));
  }

  get openFds(): number {
    return this.fds.size;
  }

  /** Queues an edge on the requested line, as the kernel would on an interrupt. */
  edge(edge: "rising" | "falling", ms: number, offset?: number): void {
    const req = this.requests.at(-1);
    this.seq++;
    this.queue.push(
      encodeLineEvent({
        timestampNs: BigInt(ms) * 1_000_000n,
        edge,
        offset: offset ?? req?.offset ?? 0,
        seqno: this.seq,
        lineSeqno: this.seq,
      }),
    );
  }

  open(path: string): number {
    const m = /gpiochip(\d+)$/.exec(path);
    if (!m || !path.startsWith(this.devDir) || Number(m[1]) >= this.chips.length) throw errno("ENOENT");
    const fd = this.nextFd++;
    this.fds.set(fd, { chip: Number(m[1]), nonblocking: false });
    return fd;
  }

  ioctl(fd: number, request: number, buf: Uint8Array): void {
    const f = this.fds.get(fd);
    if (!f || f.chip === undefined) throw errno("EBADF");
    const chip = this.chips[f.chip]!;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (request === GPIO_GET_CHIPINFO_IOCTL) {
      buf.set(encodeChipInfo({ name: `gpiochip${f.chip}`, label: chip.label, lines: chip.lines.length }));
    } else if (request === GPIO_V2_GET_LINEINFO_IOCTL) {
      const offset = dv.getUint32(64, true);
      if (offset >= chip.lines.length || buf.length !== SIZEOF.lineInfo) throw errno("EINVAL");
      buf.set(new TextEncoder().encode(chip.lines[offset]!), 0);
      const consumer = chip.used?.[offset];
      if (consumer !== undefined) {
        buf.set(new TextEncoder().encode(consumer), 32);
        dv.setBigUint64(72, LineFlag.USED | LineFlag.INPUT, true);
      }
    } else if (request === GPIO_V2_GET_LINE_IOCTL) {
      const offset = dv.getUint32(0, true);
      const numAttrs = dv.getUint32(296, true);
      const debounceUs = numAttrs > 0 && dv.getUint32(320, true) === 3 ? dv.getUint32(328, true) : 0;
      if (debounceUs && this.rejectDebounce) throw errno("EINVAL");
      if (dv.getUint32(560, true) !== 1 || offset >= chip.lines.length) throw errno("EINVAL");
      const consumerBytes = buf.subarray(256, 288);
      const consumer = new TextDecoder().decode(consumerBytes.subarray(0, consumerBytes.indexOf(0)));
      this.requests.push({ offset, flags: dv.getBigUint64(288, true), debounceUs, consumer });
      const lineFd = this.nextFd++;
      this.fds.set(lineFd, { line: offset, nonblocking: false });
      dv.setInt32(588, lineFd, true);
    } else {
      throw errno("ENOTTY");
    }
  }

  read(fd: number, buf: Uint8Array): number | null {
    const f = this.fds.get(fd);
    if (!f || f.line === undefined) throw errno("EBADF");
    if (!f.nonblocking) throw new Error("test bug: a blocking read would hang the event loop");
    let n = 0;
    while (this.queue.length && n + SIZEOF.lineEvent <= buf.length) {
      buf.set(this.queue.shift()!, n);
      n += SIZEOF.lineEvent;
    }
    return n === 0 ? null : n;
  }

  setNonBlocking(fd: number): void {
    const f = this.fds.get(fd);
    if (!f) throw errno("EBADF");
    f.nonblocking = true;
  }

  close(fd: number): void {
    this.fds.delete(fd);
  }
}
