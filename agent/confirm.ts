/**
 * How the device's user approves what policy marks `ask`, and a pair-code pairing
 * (DESIGN.md "Split-GPG on the device": a physical confirmation; timeout means deny; one prompt at
 * a time; an approval is bound to one request).
 *
 * Confirmers here: "deny" (the default: nobody is there to ask) and "command" (runs a program
 * that exits 0 to approve; it learns the request from QUBES_AIR_CONFIRM_* variables). The
 * split-GPG work adds a button/LED confirmer behind the same interface.
 * Must never: approve on an error or a timeout, or run two prompts at once.
 */
import { platform } from "../platform/index.ts";
import type { ConfirmConfig } from "./config.ts";

export type ConfirmRequest =
  | { readonly kind: "call"; readonly source: string; readonly service: string; readonly arg: string }
  | { readonly kind: "pairing"; readonly code: string; readonly peerKey: string };

export interface Confirmer {
  /** Resolves true only when the user approved this one request. Never rejects. */
  confirm(request: ConfirmRequest): Promise<boolean>;
}

export const denyConfirmer: Confirmer = { confirm: () => Promise.resolve(false) };

export function makeConfirmer(c: ConfirmConfig): Confirmer {
  return c.kind === "deny" ? denyConfirmer : serialized(commandConfirmer(c.argv, c.timeoutSeconds * 1000));
}

/** One prompt at a time: later requests wait for the earlier ones to be answered. */
export function serialized(inner: Confirmer): Confirmer {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    confirm(request) {
      const answer = tail.then(() => inner.confirm(request)).catch(() => false);
      tail = answer;
      return answer;
    },
  };
}

/** The environment a confirm command sees, besides the agent's own. */
export function confirmEnv(request: ConfirmRequest): Record<string, string> {
  if (request.kind === "pairing") {
    return {
      QUBES_AIR_CONFIRM_KIND: "pairing",
      QUBES_AIR_CONFIRM_CODE: request.code,
      QUBES_AIR_CONFIRM_PEER_KEY: request.peerKey,
      QUBES_AIR_CONFIRM_TEXT: `Pair with host ${request.peerKey.slice(0, 19)}…? Code ${request.code}`,
    };
  }
  const full = `${request.service}+${request.arg}`;
  return {
    QUBES_AIR_CONFIRM_KIND: "call",
    QUBES_AIR_CONFIRM_SOURCE: request.source,
    QUBES_AIR_CONFIRM_SERVICE: request.service,
    QUBES_AIR_CONFIRM_ARGUMENT: request.arg,
    QUBES_AIR_CONFIRM_TEXT: `Allow ${request.source} to call ${full}?`,
  };
}

export function commandConfirmer(argv: readonly string[], timeoutMs: number): Confirmer {
  return {
    async confirm(request) {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) {
        if (v !== undefined && !k.startsWith("QREXEC") && !k.startsWith("QUBES_AIR_CONFIRM_")) env[k] = v;
      }
      Object.assign(env, confirmEnv(request));
      let child: Awaited<ReturnType<typeof platform.spawn>>;
      try {
        child = await platform.spawn(argv, { env, stdin: "ignore", stdout: "ignore", stderr: "inherit" });
      } catch {
        return false;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      });
      const result = await Promise.race([child.exited, timedOut]);
      clearTimeout(timer);
      if (result === "timeout") {
        child.kill("SIGKILL");
        return false;
      }
      return result.code === 0;
    },
  };
}
