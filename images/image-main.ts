/**
 * Runs `qubes-air image build|cloud` as its own program (`bun images/image-main.ts build ...`)
 * until the host CLI wires the subcommands (it calls imageBuildCommand / imageCloudCommand).
 */
import { imageCloudCommand } from "./cloud.ts";
import type { ImageIO } from "./common.ts";
import { imageBuildCommand } from "./image-build.ts";

/** The process's streams; Ctrl-C or SIGTERM aborts the signal (the build cleans up and exits 130). */
export function processImageIO(): ImageIO {
  const ac = new AbortController();
  const stop = () => {
    if (!ac.signal.aborted) process.stderr.write("\nstopping; removing the unfinished image...\n");
    ac.abort();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  return {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
    errIsTTY: process.stderr.isTTY === true,
    env: process.env,
    signal: ac.signal,
  };
}

export async function imageMain(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "build") return imageBuildCommand(rest, processImageIO());
  if (sub === "cloud") return imageCloudCommand(rest, processImageIO());
  process.stderr.write(
    "Usage: qubes-air image build --board BOARD --base RAW --out IMG [options]\n" +
      "       qubes-air image cloud --name NAME [--port P] [--out DIR] [options]\n" +
      "Run with --help after build or cloud for the options.\n",
  );
  return sub === "--help" || sub === "-h" ? 0 : 2;
}

if (import.meta.main) {
  process.exitCode = await imageMain(process.argv.slice(2));
}
