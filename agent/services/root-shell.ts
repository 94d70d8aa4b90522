/**
 * qubes.VMRootShell on the device: a shell whose stdin, stdout, stderr and exit status are the
 * call's, which is how Qubes manages a qube with salt-ssh (`qubesctl --skip-dom0
 * --targets=DEVICE state.apply`; docs/agent.md "Managed by Salt"). The shell runs as the agent's
 * own user, with the environment any service gets (service-lookup.ts serviceEnv): on a device
 * image that user is root, so a caller allowed here can do anything on the device, its keys and
 * its policy included (docs/threat-model.md).
 *
 * The program is `/bin/bash`, as upstream's /etc/qubes-rpc/qubes.VMRootShell: Qubes' salt-ssh
 * wrapper sends `cat > PATH` and then the file's bytes on the same stdin, which needs a shell
 * that reads a pipe no further than the command it runs (bash does; dash reads ahead in blocks
 * and would run the file as script). Without bash the call ends 127, as a missing service does,
 * and Qubes' wrapper then tries qubes.VMShell, which the agent does not offer.
 *
 * It is a program the agent names itself rather than a file in serviceDirs: nothing has to be
 * installed for it, nothing on disk can swap the program, and the device's policy is the one
 * gate. The default policy denies it (core/qrexec/default-policy/50-qubes-air.policy); a service
 * file of the same name in serviceDirs never runs in its place.
 * Must never: run before policy allowed the call (serve-call.ts runs it only after), or take
 * its argv from the call (the argument is ignored, as upstream's service ignores it).
 */
import { Service } from "../../core/qrexec/services.ts";

/** Services answered by running a fixed program, looked up before serviceDirs. */
export const BUILTIN_PROGRAMS: ReadonlyMap<string, readonly string[]> = new Map([
  [Service.VMRootShell, ["/bin/bash"]],
]);
