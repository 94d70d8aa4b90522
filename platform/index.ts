/**
 * The platform of the runtime we are in: Bun's in the compiled binary and `bun test`, Node's in
 * the Armory bundle (`bun build --target=node`). Import `platform` from here, never bun.ts or
 * node.ts directly, so one agent source runs on both.
 */

import { bunPlatform } from "./bun.ts";
import { nodePlatform } from "./node.ts";
import type { Platform } from "./platform.ts";

export type * from "./platform.ts";
export { exitStatusOf, SpawnError } from "./platform.ts";

export const platform: Platform = typeof Bun !== "undefined" ? bunPlatform : nodePlatform;
