/**
 * Calls from the host into the real agent process: service lookup and environment as qrexec
 * does them, exit codes and stderr intact, the device's policy (deny runs nothing; ask goes to
 * the confirmer), and a call for another device refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Connected } from "../../core/session/establish.ts";
import { type AgentProcess, cleanup, DEVICE, makeDir, startAgent } from "../helpers/agent/harness.ts";
import { hostCall, pairHost, text } from "../helpers/agent/host-side.ts";

const ENV_DUMP = `#!/bin/sh
for v in QREXEC_REMOTE_DOMAIN QREXEC_SERVICE_FULL_NAME QREXEC_SERVICE_ARGUMENT QREXEC_AGENT_PID QREXEC_LEAK QREXEC_SERVICE_PATH; do
  eval "printf '%s=%s|%s\\n' $v \\"\\\${$v-unset}\\" \\"\\\${$v+set}\\""
done
printf 'QREXEC_REQUESTED_TARGET_TYPE=[%s]%s\\n' "$QREXEC_REQUESTED_TARGET_TYPE" "\${QREXEC_REQUESTED_TARGET_TYPE+set}"
printf 'OTHER=%s\\n' "$KEEP_ME"
printf 'argc=%s argv1=%s\\n' "$#" "$1"
`;

let agent: AgentProcess;
let host: Connected;
let marker: string;
let confirmLog: string;

beforeAll(async () => {
  const dir = makeDir();
  marker = join(dir, "marker");
  confirmLog = join(dir, "confirm.log");
  const confirm = `echo "$QUBES_AIR_CONFIRM_SOURCE $QUBES_AIR_CONFIRM_SERVICE+$QUBES_AIR_CONFIRM_ARGUMENT" >> ${confirmLog}; test "$QUBES_AIR_CONFIRM_ARGUMENT" = yes`;
  agent = await startAgent({
    dir,
    env: { QREXEC_LEAK: "x", QREXEC_SERVICE_PATH: "/nowhere", KEEP_ME: "kept" },
    config: { confirm: { kind: "command", argv: ["/bin/sh", "-c", confirm] } },
    policy: {
      "30-test.policy": [
        "test.Denied * @anyvm @anyvm deny",
        "test.Ask * work @anyvm ask",
        "test.Env * work @anyvm allow",
        "test.Which * @anyvm @anyvm allow",
        "test.Exit * @anyvm @anyvm allow",
        "test.Missing * @anyvm @anyvm allow",
        "",
      ].join("\n"),
    },
    services: {
      "test.Env": ENV_DUMP,
      "test.Which": "#!/bin/sh\necho generic\n",
      "test.Which+special": "#!/bin/sh\necho specific\n",
      "test.Exit":
        '#!/bin/sh\necho "to stderr $1" >&2\ncase "$1" in sig) kill -TERM $$ ;; *) exit "$1" ;; esac\n',
      "test.Denied": `#!/bin/sh\ntouch ${marker}\n`,
      "test.Ask": `#!/bin/sh\necho asked-and-ran\n`,
    },
  });
  host = (await pairHost(agent)).c;
});

afterAll(cleanup);

describe("calls from the host into the agent", () => {
  test("a service runs with qrexec's environment and argv", async () => {
    const r = await hostCall(host, { service: "test.Env", arg: "an-arg" });
    expect(r.status).toBe(0);
    const lines = text(r.stdout).trim().split("\n");
    expect(lines).toEqual([
      "QREXEC_REMOTE_DOMAIN=work|set",
      "QREXEC_SERVICE_FULL_NAME=test.Env+an-arg|set",
      "QREXEC_SERVICE_ARGUMENT=an-arg|set",
      `QREXEC_AGENT_PID=${agent.proc.pid}|set`,
      "QREXEC_LEAK=unset|",
      "QREXEC_SERVICE_PATH=unset|",
      "QREXEC_REQUESTED_TARGET_TYPE=[]set",
      "OTHER=kept",
      "argc=1 argv1=an-arg",
    ]);
    await agent.waitLine(/call source=work service=test.Env\+an-arg decision=allow .*status=0/);
  });

  test("an empty argument: no argv[1], but QREXEC_SERVICE_ARGUMENT is set and empty", async () => {
    const lines = text((await hostCall(host, { service: "test.Env" })).stdout).split("\n");
    expect(lines).toContain("QREXEC_SERVICE_FULL_NAME=test.Env+|set");
    expect(lines).toContain("QREXEC_SERVICE_ARGUMENT=|set");
    expect(lines).toContain("argc=0 argv1=");
  });

  test("SERVICE+ARG is preferred over SERVICE", async () => {
    expect(text((await hostCall(host, { service: "test.Which", arg: "special" })).stdout)).toBe("specific\n");
    expect(text((await hostCall(host, { service: "test.Which", arg: "other" })).stdout)).toBe("generic\n");
  });

  test("exit codes 0, 1, 127 (no such service) and 128+signal arrive intact, with stderr", async () => {
    const zero = await hostCall(host, { service: "test.Exit", arg: "0" });
    expect([zero.status, zero.stderr]).toEqual([0, "to stderr 0\n"]);
    expect((await hostCall(host, { service: "test.Exit", arg: "1" })).status).toBe(1);
    expect((await hostCall(host, { service: "test.Exit", arg: "42" })).status).toBe(42);
    const killed = await hostCall(host, { service: "test.Exit", arg: "sig" });
    expect([killed.status, killed.stderr]).toEqual([128 + 15, "to stderr sig\n"]);
    expect((await hostCall(host, { service: "test.Missing" })).status).toBe(127);
    await agent.waitLine(/call source=work service=test.Missing\+ decision=allow .*status=127/);
  });

  test("policy deny and no matching rule give 126, and the service does not run", async () => {
    const denied = await hostCall(host, { service: "test.Denied" });
    expect(denied.status).toBe(126);
    expect(denied.stderr).toBe("Request refused\n");
    await agent.waitLine(
      /call source=work service=test.Denied\+ decision=deny rule=30-test.policy:1 .*status=126/,
    );
    expect((await hostCall(host, { service: "test.Unlisted" })).status).toBe(126);
    await agent.waitLine(/service=test.Unlisted\+ decision=deny reason=no-matching-rule status=126/);
    expect(existsSync(marker)).toBe(false);
  });

  test("the shipped default policy refuses qubesair.CopyFrom", async () => {
    expect((await hostCall(host, { service: "qubesair.CopyFrom" }, new Uint8Array(4))).status).toBe(126);
  });

  test("ask goes to the confirmer, which approves or refuses this one request", async () => {
    const yes = await hostCall(host, { service: "test.Ask", arg: "yes" });
    expect([yes.status, text(yes.stdout)]).toEqual([0, "asked-and-ran\n"]);
    const no = await hostCall(host, { service: "test.Ask", arg: "no" });
    expect([no.status, text(no.stdout)]).toEqual([126, ""]);
    expect(readFileSync(confirmLog, "utf8")).toBe("work test.Ask+yes\nwork test.Ask+no\n");
    await agent.waitLine(/service=test.Ask\+no decision=ask-refused .*status=126/);
    // The rule names the source: from another qube it is no match, so no question is asked.
    expect((await hostCall(host, { source: "other", service: "test.Ask", arg: "yes" })).status).toBe(126);
    expect(readFileSync(confirmLog, "utf8").split("\n").length).toBe(3);
  });

  test("a call addressed to another device is refused without running anything", async () => {
    const r = await hostCall(host, { target: `not-${DEVICE}`, service: "test.Denied" });
    expect(r.status).toBe(126);
    await agent.waitLine(/reason=wrong-target status=126/);
    expect(existsSync(marker)).toBe(false);
  });

  test("a malformed request resets the channel: the caller sees 125", async () => {
    const channel = host.vchan.open(new Uint8Array([0xa0]));
    const { runCall } = await import("../../calls/caller.ts");
    const sink = { write: async () => {} };
    expect((await runCall(channel, { stdin: null, stdout: sink, stderr: sink })).status).toBe(125);
    await agent.waitLine(/call-refused code=schema/);
  });
});
