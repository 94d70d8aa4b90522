/**
 * sys-remote's address as the one source a cloud VM's firewall admits to the agent's port
 * (`qubes-air image cloud --sys-remote ADDR`, and `var.sys_remote_cidr` in the OpenTofu modules of
 * images/tofu-modules.ts). Parsed into its canonical form "a.b.c.d/n": a bare address is /32.
 * Must never: accept an open or nearly open firewall (0.0.0.0/0, any prefix shorter than
 * MIN_PREFIX), a list (Proxmox's `source` takes commas, AWS's a list), an ipset or alias name,
 * or a CIDR with host bits set (AWS refuses those; tofu would only fail at apply time).
 * IPv4 only: AWS takes IPv6 sources in another field (ipv6_cidr_blocks); not yet written.
 */

import { usageError } from "./common.ts";

/**
 * The widest source admitted: a /16 (65,536 addresses) still covers a sys-remote behind a
 * provider's carrier-grade NAT pool or a dynamic address in its ISP's range, while nothing
 * broader than that can be "sys-remote's address". The HCL validation is rendered from this.
 */
export const MIN_PREFIX = 16;

/** First octets that are never a sys-remote's address: "this network", loopback, multicast and up. */
export const REFUSED_FIRST_OCTETS: readonly number[] = [0, 127];
export const FIRST_MULTICAST_OCTET = 224;

const OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

const HOW =
  "--sys-remote must be sys-remote's public IPv4 address (e.g. 203.0.113.7) or a CIDR of at most " +
  `2^${32 - MIN_PREFIX} addresses (e.g. 203.0.113.0/24): the only source the VM's firewall admits`;

/** The canonical "a.b.c.d/n" for `text`, or a usage error (exit 2) saying what to give. */
export function parseSysRemoteCidr(text: string): string {
  const [addr = "", prefixText, ...rest] = text.split("/");
  if (text.length === 0 || rest.length > 0) throw usageError(HOW);
  const parts = addr.split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) throw usageError(`${HOW}; got "${text}"`);
  if (prefixText !== undefined && !/^(3[0-2]|[12]?[0-9])$/.test(prefixText))
    throw usageError(`${HOW}; "/${prefixText}" is not a prefix length`);
  const prefix = prefixText === undefined ? 32 : Number(prefixText);
  if (prefix < MIN_PREFIX) {
    throw usageError(
      `--sys-remote ${text} would admit ${2 ** (32 - prefix)} addresses to the agent's port (the widest allowed is /${MIN_PREFIX}): give sys-remote's own address, e.g. 203.0.113.7`,
    );
  }
  const octets = parts.map(Number);
  const first = octets[0]!;
  if (REFUSED_FIRST_OCTETS.includes(first) || first >= FIRST_MULTICAST_OCTET)
    throw usageError(`${HOW}; ${addr} is not an address sys-remote can connect from`);
  const value = octets.reduce((v, o) => v * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  if (value % size !== 0) {
    const net = value - (value % size);
    const canonical = [24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join(".");
    throw usageError(
      `--sys-remote ${text} has host bits set: give ${canonical}/${prefix} (the network) or ${addr} (the one address)`,
    );
  }
  return `${addr}/${prefix}`;
}
