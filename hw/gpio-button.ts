/**
 * Opens the approval button of a board: the GPIO v2 character device through bun:ffi when the
 * runtime has it (the compiled Bun binary on a Pi), else libgpiod's tools (the Node bundle, or
 * when FFI fails to load). A short press (< 1.5 s) approves, a long press denies.
 * Must never: fall back silently to something that is not a physical button.
 */
import {
  type ButtonLine,
  type ButtonOptions,
  ChardevButton,
  GpioLineError,
  type GpioSyscalls,
} from "./gpio-chardev.ts";
import { ToolsButton } from "./gpio-tools.ts";
import type { ApprovalInput } from "./input.ts";

export type { ButtonLine, ButtonOptions, GpioSyscalls } from "./gpio-chardev.ts";

export type GpioBackend = "chardev" | "tools" | "auto";

/** libc through bun:ffi, or null where bun:ffi does not exist (Node) or libc does not load. */
export async function loadFfiSyscalls(): Promise<{ sys: GpioSyscalls } | { error: string }> {
  try {
    const mod = await import("./gpio-ffi.ts");
    return { sys: await mod.libcSyscalls() };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

export interface OpenButtonOptions extends ButtonOptions {
  backend?: GpioBackend;
  /** Tests inject a simulated kernel here. */
  syscalls?: GpioSyscalls;
}

export async function openGpioButton(
  line: ButtonLine,
  options: OpenButtonOptions = {},
): Promise<ApprovalInput> {
  const backend = options.backend ?? "auto";
  let ffiError = "not tried";
  if (backend !== "tools") {
    const loaded = options.syscalls ? { sys: options.syscalls } : await loadFfiSyscalls();
    if ("sys" in loaded) return ChardevButton.open(loaded.sys, line, options);
    ffiError = loaded.error;
    if (backend === "chardev")
      throw new GpioLineError("no-backend", `GPIO character device through bun:ffi unavailable: ${ffiError}`);
  }
  try {
    return await ToolsButton.open(line, options);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new GpioLineError(
      "no-backend",
      `no usable GPIO backend for ${line.chipLabel}/${line.line}: ffi: ${ffiError}; tools: ${why}`,
    );
  }
}
