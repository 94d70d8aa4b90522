/**
 * The host CLI's side of `qubes-air image build|cloud` in sys-remote: hands the image's pending
 * enrolment (name, token, expected identity, expiry) to the daemon, the registry's one writer
 * (socket op "enrol"; host/daemon/enroller.ts checks and keeps it). Without a daemon here (the
 * image is built in another qube) nothing is recorded and the printed pair command is the way.
 * Must never: write the state dir itself, or fail the build: the image is good either way.
 */
import type { EnrolmentRequest } from "../../images/common.ts";
import { hostPaths } from "../paths.ts";
import { DaemonUnreachable, request } from "./client.ts";

export function enrolHook(env: Readonly<Record<string, string | undefined>>) {
  return async (e: EnrolmentRequest): Promise<string> => {
    const socket = hostPaths(env).socket;
    try {
      const answer = await request(socket, {
        op: "enrol",
        name: e.name,
        zone: e.zone,
        label: e.label,
        token: Uint8Array.from(Buffer.from(e.token, "hex")),
        identity: e.identity as unknown as Record<string, never>,
        ttlSeconds: e.ttlSeconds,
      });
      return (
        `Enrolled with sys-remote's daemon: it pairs ${e.name} by itself when the device appears, ` +
        `and creates its RemoteVM in dom0 (until ${String(answer.expiresAt)}). Nothing to type.`
      );
    } catch (error) {
      if (error instanceof DaemonUnreachable) {
        return "Not enrolled: no qubes-air daemon runs in this qube; pair it by hand (command above)";
      }
      return `Not enrolled: ${error instanceof Error ? error.message : "the daemon refused"}; pair it by hand (command above)`;
    }
  };
}
