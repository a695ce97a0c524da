import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { installMissingPackages, requireRoot } from "../lab/host.js";
import { LAB_BMC_TYPES, type LabBmcType } from "../lab/lab-bmc.js";
import {
  ARM64_LAB_MACHINE,
  ARM64_SECURE_BOOT_LAB_MACHINE,
  HTTP_BOOT_LAB_MACHINE,
  LAB_SERVER_ADDRESS,
  SECURE_BOOT_LAB_MACHINES,
  SEED_LAB_MACHINES,
} from "../lab/lab-config.js";
import {
  DEFAULT_LAB_NAMESPACE,
  DEFAULT_LAB_STATE_DIR,
  describeProgress,
  labDown,
  labNodes,
  labStatus,
  labUp,
  machineSerialTail,
  watchLab,
  type Lab,
  type LabState,
} from "../lab/lab.js";
import { Milestone } from "../lab/progress.js";
import { serveRedfishBmc, type RedfishBmcSpec } from "../lab/redfish-bmc.js";

interface LabCommandOptions {
  stateDir: string;
  namespace: string;
}

let ignoringClosedStdout = false;

/** `centra-pxe lab up|down|status`: the seed's node01/02/03 launch scripts as an isolated lab. */
export function registerLabCommand(program: Command): void {
  const lab = program
    .command("lab")
    .description(
      "an isolated lab (own network namespace and bridge) where the server runs and QEMU machines PXE-boot from it, BIOS and UEFI",
    )
    .option(
      "--state-dir <dir>",
      "the lab's state directory (serial consoles, server log, config)",
      DEFAULT_LAB_STATE_DIR,
    )
    .option("--namespace <name>", "the lab's network namespace", DEFAULT_LAB_NAMESPACE);
  const say = (line: string) => {
    // `lab status | head` closes the pipe early; that is not an error worth a stack trace.
    if (!ignoringClosedStdout) {
      ignoringClosedStdout = true;
      process.stdout.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code !== "EPIPE") throw error;
      });
    }
    process.stdout.write(`${line}\n`);
  };
  // `lab --state-dir D up` and `lab up --state-dir D` both work: the subcommand's own value wins.
  const withLabOptions = (sub: Command) =>
    sub
      .option("--state-dir <dir>", "the lab's state directory (as on `lab`)")
      .option("--namespace <name>", "the lab's network namespace (as on `lab`)");
  const resolve = (own: Partial<LabCommandOptions>): LabCommandOptions => {
    const parent = lab.opts<LabCommandOptions>();
    return { stateDir: own.stateDir ?? parent.stateDir, namespace: own.namespace ?? parent.namespace };
  };

  withLabOptions(lab.command("up"))
    .description(
      "build the lab image, start the server in the lab namespace and boot node01 (BIOS), node02 (UEFI PXE) and node03 (unknown: the menu)",
    )
    .option("--http-boot", "also boot node04 by UEFI HTTP boot (no TFTP)")
    .option(
      "--https",
      "serve HTTPS with a CA made by `tls init`; node04 (UEFI HTTP boot, the CA given to OVMF) and the other machines run our iPXE built from $CENTRA_PXE_IPXE_SOURCE with that CA: scripts, kernel and initrd over https://",
    )
    .option(
      "--arm64",
      "also boot node07, an ARM64 server (AAVMF, DHCP arch 11): builds ipxe-arm64.efi from $CENTRA_PXE_IPXE_SOURCE first",
    )
    .option(
      "--secure-boot",
      "also boot node05 and node06 on OVMF with Secure Boot on: node05 (secureBoot) through shim and grub, node06 (iPXE) refused; with --arm64 also node11, an ARM64 server with Secure Boot on (AAVMF with Microsoft's keys) through Debian's signed arm64 shim and grub",
    )
    .option(
      "--dhcp <mode>",
      "server: ours hands out addresses; proxy: a foreign DHCP server (dnsmasq) does, ours only boot information",
      "server",
    )
    .option("--wait <seconds>", "follow the boots this long before returning (the lab keeps running)", "420")
    .option(
      "--ipv6-ra",
      "advertise an IPv6 prefix on the lab network: iPXE then stops waiting ~17 s for an IPv6 router",
    )
    .option("--no-install", "do not apt-get install missing Debian packages")
    .option(
      "--bmc [type]",
      "give every machine a BMC and leave it powered off: ipmi (ipmi_sim, the default) or redfish (the lab's Redfish server); provision with `nodes provision NODE --power`",
    )
    .action(
      async (
        options: Partial<LabCommandOptions> & {
          bmc?: string | true;
          httpBoot?: boolean;
          https?: boolean;
          secureBoot?: boolean;
          arm64?: boolean;
          ipv6Ra?: boolean;
          dhcp: string;
          wait: string;
          install: boolean;
        },
      ) => {
        const common = resolve(options);
        requireRoot();
        if (options.dhcp !== "server" && options.dhcp !== "proxy")
          throw new Error(`--dhcp must be server or proxy, got ${JSON.stringify(options.dhcp)}`);
        const bmc = options.bmc === true ? "ipmi" : options.bmc;
        if (bmc !== undefined && !LAB_BMC_TYPES.includes(bmc as LabBmcType))
          throw new Error(`--bmc must be ${LAB_BMC_TYPES.join(" or ")}, got ${JSON.stringify(bmc)}`);
        if (options.install) installMissingPackages(say);
        const machines = [
          ...SEED_LAB_MACHINES,
          // --https shows UEFI HTTP boot over https://, so it brings node04 along.
          ...(options.httpBoot || options.https ? [HTTP_BOOT_LAB_MACHINE] : []),
          ...(options.secureBoot ? SECURE_BOOT_LAB_MACHINES : []),
          ...(options.arm64 ? [ARM64_LAB_MACHINE] : []),
          // Both: an ARM64 server with Secure Boot on, through Debian's signed arm64 shim and grub.
          ...(options.arm64 && options.secureBoot ? [ARM64_SECURE_BOOT_LAB_MACHINE] : []),
        ];
        let running: Lab;
        try {
          running = await labUp({
            stateDir: common.stateDir,
            namespace: common.namespace,
            machines,
            dhcpMode: options.dhcp,
            ipv6RouterAdvertisements: options.ipv6Ra === true,
            // ipxe-arm64.efi for --arm64, the ROM and ipxe.efi for --https: a cache that outlives the
            // lab, so only the first `lab up` compiles (a new lab's CA then relinks, in seconds).
            ipxeCacheDir: "/var/cache/centra-pxe/ipxe-build",
            ...(options.https ? { https: true } : {}),
            ...(bmc ? { bmc: bmc as LabBmcType } : {}),
            say,
          });
        } catch (error) {
          say(`lab up failed; cleaning up what it made`);
          await labDown({ stateDir: common.stateDir, namespace: common.namespace });
          throw error;
        }
        if (bmc) {
          say(`\nthe machines are powered off; provision one by power from inside the lab, e.g.:`);
          say(
            `  ip netns exec ${common.namespace} centra-pxe nodes provision ${running.state.machines[0]?.mac} --power --url http://${LAB_SERVER_ADDRESS} --token "$(cat ${common.stateDir}/admin-token)"`,
          );
          say("`centra-pxe lab status` to follow them, `centra-pxe lab down` to remove everything");
          return;
        }
        const t0 = Date.now();
        const progress = await watchLab(running, {
          timeoutMs: Number(options.wait) * 1000,
          recordTimes: true,
          onMilestone: (p, m) => {
            const detail =
              m === Milestone.Address
                ? ` ${p.report.address}`
                : m === Milestone.CalledBack
                  ? ` (HTTP ${p.report.callbackStatus}) booted with ${["centra.profile", "centra.hostname"].map((k) => `${k}=${p.report.params[k] ?? "?"}`).join(" ")}`
                  : m === Milestone.Failed
                    ? `: ${p.report.failure}`
                    : "";
            say(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${p.machine.name.padEnd(7)} ${m}${detail}`);
          },
        });
        say("");
        for (const p of progress) {
          say(describeProgress(p));
          if (p.report.reached.has(Milestone.Failed) || (!p.done && !p.running))
            say(machineSerialTail(p.machine, 15).replace(/^/gm, "      | "));
        }
        printInventory(running.state, say);
        if (running.state.https) {
          const overHttps = running.state.machines.filter((m) => m.overHttps).map((m) => m.name);
          say(`over HTTPS (our iPXE build, the lab's CA ${running.state.https.ca}): ${overHttps.join(", ")}`);
          say(
            `  ip netns exec ${common.namespace} curl --cacert ${running.state.https.ca} https://${LAB_SERVER_ADDRESS}/health`,
          );
        }
        say(`\nthe server keeps running in namespace ${common.namespace}; its API from inside the lab:`);
        say(
          `  ip netns exec ${common.namespace} centra-pxe nodes list --url http://10.0.100.10 --token "$(cat ${common.stateDir}/admin-token)"`,
        );
        say("`centra-pxe lab status` to look again, `centra-pxe lab down` to remove everything");
      },
    );

  withLabOptions(lab.command("status"))
    .description("what the lab's machines have reached, and whether its server runs")
    .action(async (options: Partial<LabCommandOptions>) => {
      const common = resolve(options);
      const status = await labStatus(common.stateDir);
      if (!status) {
        say(`no lab in ${common.stateDir}; start one with \`centra-pxe lab up\``);
        return;
      }
      say(
        `lab ${status.state.namespace}: server ${status.serverRunning ? `running (pid ${status.state.server?.pid})` : "not running"}, DHCP ${status.state.dhcpMode}, ${status.state.accelerator ?? "?"}`,
      );
      for (const p of status.machines) say(describeProgress(p));
      if (status.serverRunning) printInventory(status.state, say);
    });

  // Run by `lab up --bmc redfish` inside the lab namespace; not for operators.
  lab
    .command("redfish-bmc <spec>", { hidden: true })
    .description("serve the lab's Redfish BMCs described by <spec> (written by `lab up --bmc redfish`)")
    .action(async (spec: string) => {
      const parsed = JSON.parse(readFileSync(spec, "utf8")) as RedfishBmcSpec;
      await serveRedfishBmc(parsed, (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
    });

  withLabOptions(lab.command("down"))
    .description(
      "stop the machines and the server and remove every namespace, device and file the lab made (safe to run twice)",
    )
    .action(async (options: Partial<LabCommandOptions>) => {
      const common = resolve(options);
      requireRoot();
      await labDown({ stateDir: common.stateDir, namespace: common.namespace, say });
      say("lab is down");
    });
}

/** The server's view: each lab machine's lifecycle state (a successful callback makes it `provisioned`). */
function printInventory(state: LabState, say: (line: string) => void): void {
  try {
    const nodes = labNodes(state);
    say("inventory (the server's API):");
    for (const n of nodes)
      say(`  ${n.macs.join(",")} ${(n.hostname ?? "-").padEnd(18)} ${(n.profile ?? "-").padEnd(14)} ${n.state}`);
  } catch (error) {
    say(`inventory unavailable: ${(error as Error).message}`);
  }
}
