import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { sh } from "./netns.js";

/**
 * OpenIPMI's `ipmi_sim` (Debian `openipmi`) as a real IPMI 2.0 BMC on a loopback address of its own
 * (127.x.y.z: the whole /8 is local on Linux, so every run gets its own address on the standard
 * port 623 and runs never collide). Power and the boot device go through a `chassis_control`
 * script that keeps them in files of the temp directory and logs every call, so a test can see
 * what the BMC was told and set the machine's state behind the BMC's back.
 */
export interface IpmiSim {
  address: string;
  port: number;
  username: string;
  password: string;
  /** The `chassis_control` calls so far, one per line (`0x20 set power 1`). */
  calls(): string[];
  /** The power the chassis reports (`1` on, `0` off). */
  power(): string;
  stop(): Promise<void>;
}

const CHASSIS_CONTROL = `#!/bin/sh
# ipmi_sim's chassis_control protocol: <mc> get <parm>... | <mc> set <parm> <value>...
dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
shift
op=$1; shift
case $op in
  get)
    for p in "$@"; do
      case $p in
        power) echo "power:$(cat "$dir/power" 2>/dev/null || echo 0)" ;;
        boot) echo "boot:$(cat "$dir/boot" 2>/dev/null || echo default)" ;;
      esac
    done ;;
  set)
    while [ -n "$1" ]; do
      case $1 in
        power) echo "$2" > "$dir/power" ;;
        boot) echo "$2" > "$dir/boot" ;;
      esac
      shift 2
    done ;;
  *) exit 1 ;;
esac
`;

export async function startIpmiSim(options: { password?: string } = {}): Promise<IpmiSim> {
  const dir = mkdtempSync(join(tmpdir(), "centra-ipmi-sim-"));
  const address = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  const port = 623;
  const username = "admin";
  const password = options.password ?? `pw-${randomInt(1e9)}`;
  const control = join(dir, "chassis-control");
  writeFileSync(control, CHASSIS_CONTROL);
  chmodSync(control, 0o755);
  writeFileSync(join(dir, "power"), "0\n");
  writeFileSync(join(dir, "calls"), "");
  mkdirSync(join(dir, "state"));
  writeFileSync(
    join(dir, "lan.conf"),
    `name "centra-test"
set_working_mc 0x20
  startlan 1
    addr ${address} ${port}
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid 0123456789abcdef0123456789abcdef
  endlan
  chassis_control "${control} 0x20"
  user 2 true "${username}" "${password}" admin 10 md5
`,
  );
  writeFileSync(
    join(dir, "bmc.emu"),
    "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n",
  );
  const child: ChildProcess = spawn(
    "ipmi_sim",
    ["-c", join(dir, "lan.conf"), "-f", join(dir, "bmc.emu"), "-s", join(dir, "state"), "-n"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  // Ready once it opens an RMCP+ session and answers Get Device ID (the password from a file here too).
  writeFileSync(join(dir, "password"), password, { mode: 0o600 });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if (child.exitCode !== null) throw new Error(`ipmi_sim exited: ${stderr}`);
      try {
        sh("ipmitool", [
          "-I",
          "lanplus",
          "-H",
          address,
          "-p",
          String(port),
          "-U",
          username,
          "-f",
          join(dir, "password"),
          "-N",
          "1",
          "-R",
          "1",
          "raw",
          "0x06",
          "0x01",
        ]);
        break;
      } catch (error) {
        if (Date.now() > deadline)
          throw new Error(
            `ipmi_sim did not answer on ${address}:${port}: ${stderr} ${String((error as { stderr?: unknown }).stderr)}`,
          );
        await new Promise((r) => setTimeout(r, 200));
      }
    } catch (error) {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }
  return {
    address,
    port,
    username,
    password,
    calls: () => readFileSync(join(dir, "calls"), "utf8").split("\n").filter(Boolean),
    power: () => readFileSync(join(dir, "power"), "utf8").trim(),
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGKILL");
        await once(child, "exit");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
