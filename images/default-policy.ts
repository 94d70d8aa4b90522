/**
 * The agent's shipped default policy (core/qrexec/default-policy/50-qubes-air.policy), embedded as
 * text at build time so the compiled host CLI can write it into images without the sources.
 */
import text from "../core/qrexec/default-policy/50-qubes-air.policy" with { type: "text" };

export const DEFAULT_POLICY: string = text;
