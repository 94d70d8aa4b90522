/**
 * Registration of remote qubes in dom0, from sys-remote (docs/enrolment.md "Registration"): one
 * call to the dom0 service the dom0 package ships (packaging/files/dom0/qubesair.RegisterRemote),
 * allowed from sys-remote by 45-qubes-air-register.policy:
 *
 *   qrexec-client-vm dom0 qubesair.RegisterRemote+NAME   stdin "register LABEL NAME\n"
 *   qrexec-client-vm dom0 qubesair.RegisterRemote+NAME   stdin "unregister\n"
 *
 * dom0 makes the RemoteVM with relayvm = this qube (the caller qrexec names, never a value we
 * send) and transport_rpc = qubesair.NoiseProxy, tagged created-by-<this qube>, and removes only
 * such a RemoteVM. sys-remote has no Admin API rights: it cannot point a RemoteVM elsewhere.
 * Used by the daemon (after a pairing) and by `qubes-air unpair --remove-qube` without a daemon.
 * Must never: go through a shell, pass a name or label outside their grammar, or quote the answer
 * unbounded or with control characters.
 */
import { assert, ConfigError } from "../core/errors.ts";
import { isQubeLabel, isQubeName } from "../core/qrexec/names.ts";
import { REGISTER_REMOTE_LIMITS, Service } from "../core/qrexec/services.ts";
import { platform, SpawnError } from "../platform/index.ts";
import type { ByteSource } from "../transport/transport.ts";

/** The program a qube calls qrexec services with (the daemon's --qrexec-client replaces it). */
export const DEFAULT_QREXEC_CLIENT = "qrexec-client-vm";

/** qrexec-client-vm's exit status when the policy refused the call (or dom0 has no such service). */
const QREXEC_REFUSED = 126;

export interface RemoteVmSpec {
  readonly name: string;
  readonly label: string;
}

/** How dom0 is reached: the qrexec-client-vm program (the daemon's --qrexec-client) and its env. */
export interface Dom0Caller {
  readonly client?: string;
  readonly env?: Record<string, string>;
}

/** dom0 refused or could not be asked; the message says why and what to do. */
export class RegisterError extends ConfigError {}

/** Creates the RemoteVM, or updates the one this qube registered before (a device paired again). */
export async function registerRemoteVm(
  spec: RemoteVmSpec,
  via: Dom0Caller = {},
): Promise<"created" | "updated"> {
  assert(
    isQubeName(spec.name) && isQubeLabel(spec.label),
    "names and labels are checked before registration",
  );
  const answer = await call(spec.name, `register ${spec.label} ${spec.name}\n`, via);
  if (answer === "created" || answer === "updated") return answer;
  throw refused(spec.name, "register", answer);
}

/** Removes the RemoteVM this qube registered (dom0 refuses any other). */
export async function removeRemoteVm(name: string, via: Dom0Caller = {}): Promise<void> {
  assert(isQubeName(name), "names are checked before removal");
  const answer = await call(name, "unregister\n", via);
  if (answer !== "removed") throw refused(name, "remove", answer);
}

function refused(name: string, what: string, answer: string): RegisterError {
  return new RegisterError(`dom0 would not ${what} the RemoteVM ${name}: ${answer || "no answer"}`);
}

/** One call to the dom0 service: its answer line (cleaned), or a RegisterError. */
async function call(name: string, request: string, { client, env }: Dom0Caller): Promise<string> {
  assert(request.length <= REGISTER_REMOTE_LIMITS.maxRequestBytes, "the request fits dom0's limit");
  const program = client ?? DEFAULT_QREXEC_CLIENT;
  const argv = [program, "dom0", `${Service.RegisterRemote}+${name}`];
  let child: Awaited<ReturnType<typeof platform.spawn>>;
  try {
    child = await platform.spawn(argv, { stdin: "pipe", stderr: "ignore", ...(env ? { env } : {}) });
  } catch (e) {
    if (e instanceof SpawnError) {
      throw new RegisterError(
        `${program} is not installed in this qube: run sys-remote as a Qubes qube ` +
          "(qubes-core-agent), or turn registration off (--no-register)",
      );
    }
    throw e;
  }
  const sending = (async () => {
    await child.stdin!.write(new TextEncoder().encode(request));
    await child.stdin!.closeWrite();
  })().catch(() => {}); // dom0 may answer (refuse) before reading it all
  const [stdout, exit] = await Promise.all([collect(child.stdout), child.exited, sending]);
  if (exit.code === QREXEC_REFUSED) {
    throw new RegisterError(
      `dom0's qrexec policy refuses ${Service.RegisterRemote} from this qube: install qubes-air-dom0 ` +
        "in dom0 (45-qubes-air-register.policy allows sys-remote; a relay qube with another name " +
        "needs the same rule for its name, docs/enrolment.md), or turn registration off (--no-register)",
    );
  }
  const answer = clean(stdout);
  if (exit.code === 0) return answer;
  return answer.length > 0 ? answer : `exit ${exit.code ?? exit.signal}`;
}

async function collect(source: ByteSource | null): Promise<Uint8Array> {
  if (source === null) return new Uint8Array();
  const max = REGISTER_REMOTE_LIMITS.maxAnswerBytes;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const chunk = await source.read();
    if (chunk === null) break;
    if (size < max) chunks.push(chunk.subarray(0, max - size));
    size += chunk.length;
  }
  return Buffer.concat(chunks);
}

/** The answer as one line of printable text. */
function clean(bytes: Uint8Array): string {
  return new TextDecoder()
    .decode(bytes)
    .replace(/[^\x20-\x7e]+/g, " ")
    .trim();
}
