/** `qubes-air pair`: pairs a new remote qube through the daemon (which keeps its session). */
import { createInterface } from "node:readline";
import { EXIT } from "../../core/cli/exit-codes.ts";
import type { CborMap } from "../../core/wire/cbor.ts";
import { isLabel, LABELS } from "../daemon/enrolments.ts";
import { isByIdName, isSerialPath, isUsbSerial, normalizeMac, parseTcpAddress } from "../daemon/registry.ts";
import { DEFAULT_BY_ID_DIR } from "../daemon/transport-open.ts";
import { checked, converse } from "./client.ts";
import { COMMON_HELP, type Command, localQubeName, parse, pathsOf, qubeArg, UsageError } from "./common.ts";

const OPTIONS = {
  tcp: { type: "string" },
  serial: { type: "string" },
  token: { type: "string" },
  code: { type: "boolean" },
  zone: { type: "string" },
  "usb-serial": { type: "string" },
  mac: { type: "string" },
  label: { type: "string" },
} as const;

export const pairCommand: Command = {
  name: "pair",
  summary: "pair a new remote qube (device or cloud VM)",
  help: `Usage: qubes-air pair NAME (--tcp HOST:PORT | --serial BY-ID-OR-PATH) (--token HEX | --code) [options]

Pairs the agent at that address and keeps it as the remote qube NAME (use the name of its
RemoteVM in dom0). With --token, the 64-hex-digit one-time token the image builder printed;
with --code, both ends show a 6-digit code that you compare and confirm.

Options:
  --tcp HOST:PORT        the agent listens on TCP (cloud VM, USB Ethernet gadget)
  --serial NAME|PATH     a USB serial device: its name in ${DEFAULT_BY_ID_DIR}/ (preferred) or a path
  --token HEX            the one-time pairing token (32 bytes)
  --code                 pair by comparing a 6-digit code instead
  --zone ZONE            a label for list (default: usb for serial, lan for tcp)
  --usb-serial SERIAL    match the device by its USB serial number when it is plugged in
  --mac MAC              reconnect at once when a network interface with this MAC appears
  --label LABEL          the RemoteVM's label when the daemon creates it in dom0 (default gray)
${COMMON_HELP}

Examples:
  qubes-air pair pi-gpg --serial usb-qubes-air_pi-gpg_E6614103-if00 --token 3f9a...c1
  qubes-air pair build1 --tcp 203.0.113.7:7443 --zone cloud --code`,

  async run(args, ctx) {
    const { values, positionals } = parse(args, OPTIONS);
    if (positionals.length !== 1) throw new UsageError("give exactly one NAME");
    const name = qubeArg(positionals[0], "NAME");
    const tcp = values.tcp as string | undefined;
    const serial = values.serial as string | undefined;
    if ((tcp === undefined) === (serial === undefined))
      throw new UsageError("give exactly one of --tcp or --serial");
    const token = values.token as string | undefined;
    if ((token === undefined) === (values.code !== true))
      throw new UsageError("give exactly one of --token or --code");
    const request: CborMap = {
      op: "pair",
      name,
      zone: (values.zone as string | undefined) ?? (tcp ? "lan" : "usb"),
      transport: tcp ? { tcp: tcpAddress(tcp) } : { serial: serialSpec(serial!) },
    };
    if (token !== undefined) {
      if (!/^[0-9a-fA-F]{64}$/.test(token)) throw new UsageError("--token must be 64 hex digits");
      request.token = Uint8Array.from(token.match(/../g)!.map((h) => Number.parseInt(h, 16)));
    } else request.code = true;
    const usbSerial = values["usb-serial"] as string | undefined;
    if (usbSerial !== undefined) {
      if (!isUsbSerial(usbSerial)) throw new UsageError("--usb-serial must be 1-64 of A-Z a-z 0-9 _ . : -");
      request.usbSerial = usbSerial;
    }
    if (values.mac !== undefined) {
      const mac = normalizeMac(values.mac as string);
      if (!mac) throw new UsageError("--mac must look like aa:bb:cc:dd:ee:ff");
      request.mac = mac;
    }
    if (values.label !== undefined) {
      if (!isLabel(values.label as string))
        throw new UsageError(`--label must be one of ${LABELS.join(", ")}`);
      request.label = values.label as string;
    }
    const c = await converse(pathsOf(ctx, values).socket, request);
    let answer: CborMap;
    try {
      answer = await c.next();
      if (answer.event === "code") {
        const code = String(answer.code);
        ctx.err(`Pairing code: ${code.slice(0, 3)} ${code.slice(3)}\n`);
        const yes = /^(y|yes)$/i.test(
          (await askLine("Does the device show the same code? [y/N] ", ctx)).trim(),
        );
        await c.send({ op: "confirm", approved: yes });
        answer = await c.next();
      }
    } finally {
      c.close();
    }
    checked(answer);
    ctx.out(`Paired ${name}: agent ${String(answer.agentVersion)}, key ${String(answer.agentKey)}\n`);
    if (answer.registered === true) {
      ctx.out(`Created the RemoteVM ${name} in dom0 (relayvm ${localQubeName()}).\n`);
    } else {
      if (typeof answer.registerError === "string") ctx.err(`Not created in dom0: ${answer.registerError}\n`);
      ctx.out(
        `In dom0, make it a qube (once):\n  qvm-create --class RemoteVM --label ${request.label ?? "gray"} ${name}\n` +
          `  qvm-prefs ${name} relayvm ${localQubeName()}\n  qvm-prefs ${name} transport_rpc qubesair.NoiseProxy\n` +
          `  qvm-prefs ${name} remote_name ${name}\n`,
      );
    }
    return EXIT.OK;
  },
};

function tcpAddress(text: string): string {
  if (!parseTcpAddress(text)) throw new UsageError("--tcp must be HOST:PORT (or [IPv6]:PORT)");
  return text;
}

function serialSpec(text: string): { byId: string } | { path: string } {
  const prefix = `${DEFAULT_BY_ID_DIR}/`;
  if (text.startsWith(prefix) && isByIdName(text.slice(prefix.length)))
    return { byId: text.slice(prefix.length) };
  if (!text.includes("/")) {
    if (!isByIdName(text)) throw new UsageError(`--serial: not a name in ${DEFAULT_BY_ID_DIR}/`);
    return { byId: text };
  }
  if (!isSerialPath(text)) throw new UsageError("--serial must be a by-id name or an absolute path");
  return { path: text };
}

/** One line from stdin (the terminal, when interactive); "" at EOF. */
function askLine(prompt: string, ctx: { err(t: string): void }): Promise<string> {
  ctx.err(prompt);
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, terminal: false });
    let done = false;
    rl.once("line", (line) => {
      done = true;
      rl.close();
      resolve(line);
    });
    rl.once("close", () => {
      if (!done) resolve("");
    });
  });
}
