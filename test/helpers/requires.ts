/**
 * Skipping for a missing tool, the project's way. A test that needs a system tool may skip where
 * the tool is missing (a developer's machine), but never under CI=true: the CI machine installs
 * every tool the tests use (scripts/system-deps.sh), so there the missing tool becomes a failing
 * test that names it and the fix. Kernel features and devices this machine kind cannot have
 * (gpio-sim, loop devices) are not tools and do not go through here.
 * Must never: let a run under CI=true pass with a test skipped for a missing tool.
 */
import { test } from "bun:test";

/**
 * `describe.skipIf(lacking(why))`: `why` is null when everything is there, else what is missing.
 * Under CI=true it also registers a failing test, so the run cannot pass.
 */
export function lacking(why: string | null | undefined): boolean {
  if (!why) return false;
  if (process.env.CI === "true") {
    test(`the tests need ${why}`, () => {
      throw new Error(`missing ${why}: run scripts/system-deps.sh as root (the README's test command does)`);
    });
  }
  return true;
}
