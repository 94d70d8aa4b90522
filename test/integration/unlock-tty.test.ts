/**
 * `qubes-air unlock` on a real terminal: the PIN is read in raw mode without echo. The CLI runs
 * on a pty (python3's pty module stands in for the person's terminal); the test waits for the
 * prompt, types the PIN and Enter, and checks that the terminal never showed the PIN. With no
 * daemon running the call then fails (exit 125): what is checked here is the prompt alone; the
 * sending is key-lock.test.ts's.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { BUN, cleanEnv, ROOT, run, tempDir } from "../../fixtures/qubes-stubs/harness.ts";
import { lacking } from "../helpers/requires.ts";

const which = (tool: string) => Bun.which(tool) !== null;

/** Runs argv on a pty; types `typed` once `prompt` appeared; prints everything the terminal showed. */
const DRIVER = `
import os, pty, sys, select
argv, prompt, typed = sys.argv[3:], sys.argv[1].encode(), sys.argv[2].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
seen, sent = b"", False
while True:
    r, _, _ = select.select([fd], [], [], 30)
    if not r:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if not sent and prompt in seen:
        os.write(fd, typed)
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.hex() + "\\n" + str(os.waitstatus_to_exitcode(status)) + "\\n")
`;

describe.skipIf(lacking(which("python3") ? null : "python3"))("qubes-air unlock on a terminal", () => {
  test("prompts on the terminal, does not echo the PIN, then sends it (here: no daemon, 125)", async () => {
    const state = tempDir("qa-unlock-tty-");
    const env = {
      ...cleanEnv(),
      QUBES_AIR_STATE: state,
      QUBES_AIR_SOCKET: join(state, "no-daemon.sock"),
    };
    const r = await run(
      [
        "python3",
        "-c",
        DRIVER,
        "PIN for pi-gpg:",
        "735194\r",
        BUN,
        join(ROOT, "host/main.ts"),
        "unlock",
        "pi-gpg",
      ],
      env,
    );
    const [hex, status] = r.stdout.trim().split("\n");
    const shown = Buffer.from(hex!, "hex").toString("utf8");
    expect(shown).toContain("PIN for pi-gpg: ");
    expect(shown).not.toContain("735194");
    expect(shown).toContain("the qubes-air daemon is not running");
    expect(Number(status)).toBe(125);
  });
});
