/**
 * Desktop notifications in sys-remote for the devices' prompts (prompts.ts): `notify-send`, where
 * the qube has a GUI. Qubes shows a service qube's notifications on the desktop like any qube's.
 * A GUI is there when notify-send is on PATH and there is a display: the daemon's environment
 * names one (DISPLAY or WAYLAND_DISPLAY), or, for a systemd user unit that did not import the
 * session's environment, the X server of a qube with a GUI listens at /tmp/.X11-unix/X0 (then
 * notify-send gets DISPLAY=:0). Without one, nothing is tried and the journal line is the record.
 * Must never: fail or delay the daemon (a notification is fire and forget, at most
 * NOTIFY_IN_FLIGHT at once, the rest dropped and counted), or pass text that is not printable
 * ASCII (the announcement decoder reduced it) or that notify-send could read as an option.
 */
import { join } from "node:path";
import { platform as defaultPlatform, type Platform } from "../../platform/index.ts";

/** notify-send processes at once: a person cannot read more than a few per second anyway. */
export const NOTIFY_IN_FLIGHT = 4;
/** How long a decision stays on screen; a waiting prompt stays until dismissed (critical). */
export const NOTIFY_EXPIRE_MS = 10_000;

export type Notify = (summary: string, body: string, urgent: boolean) => void;

/** The X server socket of display :0, which a qube with a GUI has. */
export const X0_SOCKET = "/tmp/.X11-unix/X0";

export interface Notifier {
  readonly program: string;
  /** Set for notify-send besides the daemon's own environment (DISPLAY when it had none). */
  readonly display: Record<string, string>;
}

/** The notify-send to run, or null when this qube has no GUI to show notifications on. */
export async function findNotifier(
  env: Record<string, string | undefined>,
  p: Pick<Platform, "stat"> = defaultPlatform,
  x0Socket: string = X0_SOCKET,
): Promise<Notifier | null> {
  let display: Record<string, string> = {};
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) {
    if (!(await p.stat(x0Socket).catch(() => null))?.isSocket) return null;
    display = { DISPLAY: ":0" };
  }
  for (const dir of (env.PATH ?? "").split(":")) {
    if (!dir.startsWith("/")) continue; // a relative PATH entry depends on the daemon's cwd
    const path = join(dir, "notify-send");
    const st = await p.stat(path).catch(() => null);
    if (st?.isFile && (st.mode & 0o111) !== 0) return { program: path, display };
  }
  return null;
}

/** A Notify that runs the notifier, or does nothing when there is none. */
export function desktopNotifier(
  notifier: Notifier | null,
  log: (message: string) => void,
  p: Pick<Platform, "spawn"> = defaultPlatform,
): Notify {
  if (notifier === null) return () => {};
  const { program } = notifier;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, notifier.display);
  let inFlight = 0;
  let dropped = 0;
  let failed = false;
  return (summary, body, urgent) => {
    if (inFlight >= NOTIFY_IN_FLIGHT) {
      dropped++;
      if (dropped === 1 || dropped % 100 === 0) log(`notifications: ${dropped} dropped (too many at once)`);
      return;
    }
    inFlight++;
    const argv = [
      program,
      "--app-name=qubes-air",
      `--urgency=${urgent ? "critical" : "normal"}`,
      `--expire-time=${urgent ? 0 : NOTIFY_EXPIRE_MS}`,
      "--",
      summary,
      body,
    ];
    void p
      .spawn(argv, { env, stdin: "ignore", stdout: "ignore", stderr: "ignore" })
      .then((child) => child.exited)
      .then(
        (e) => {
          if (e.code !== 0 && !failed) {
            failed = true; // said once: a desktop without a notification daemon fails every time
            log(`notifications: notify-send exited with ${e.code ?? e.signal}; the journal keeps the record`);
          }
        },
        () => {
          if (!failed) log("notifications: cannot start notify-send; the journal keeps the record");
          failed = true;
        },
      )
      .finally(() => inFlight--);
  };
}
