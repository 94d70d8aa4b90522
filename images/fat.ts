/**
 * Reads and writes files on a FAT partition inside an image with mtools ("IMG@@OFFSET"): no
 * root, no mount. MTOOLS_SKIP_CHECK=1 because images made by other tools often have geometry
 * mtools would otherwise complain about. Files are written whole (mcopy -o replaces).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageError, run } from "./common.ts";

const ENV = { MTOOLS_SKIP_CHECK: "1" };
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

export class FatImage {
  constructor(
    readonly tools: { mtype: string; mcopy: string; mdir: string },
    readonly image: string,
    readonly offset: number,
  ) {}

  private get drive(): string {
    return `${this.image}@@${this.offset}`;
  }

  /** Names in the root directory (as stored, case preserved). */
  list(): string[] {
    const r = run(this.tools.mdir, ["-b", "-i", this.drive, "::/"], { env: ENV, allowFail: true });
    if (r.status !== 0) {
      throw new ImageError(`cannot read the FAT boot partition of ${this.image}: ${r.stderr.trim()}`);
    }
    return r.stdout
      .toString("utf8")
      .split("\n")
      .map((l) => l.trim().replace(/^::\//, ""))
      .filter((l) => l !== "" && !l.endsWith("/"));
  }

  has(name: string): boolean {
    return this.list().some((n) => n.toLowerCase() === name.toLowerCase());
  }

  /** A file of the root directory, or null when absent. */
  read(name: string): Buffer | null {
    if (!NAME.test(name)) throw new ImageError(`bad FAT file name ${name}`);
    if (!this.has(name)) return null;
    return run(this.tools.mtype, ["-i", this.drive, `::/${name}`], { env: ENV }).stdout;
  }

  /** Writes (or replaces) a file in the root directory. */
  write(name: string, content: string | Uint8Array): void {
    if (!NAME.test(name)) throw new ImageError(`bad FAT file name ${name}`);
    const dir = mkdtempSync(join(tmpdir(), "qa-fat-"));
    try {
      const src = join(dir, name);
      writeFileSync(src, content);
      run(this.tools.mcopy, ["-o", "-i", this.drive, src, `::/${name}`], { env: ENV });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const back = this.read(name);
    const want = typeof content === "string" ? Buffer.from(content) : Buffer.from(content);
    if (!back?.equals(want)) throw new ImageError(`${name} was not written correctly to the boot partition`);
  }
}
