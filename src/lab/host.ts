import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, readFileSync, rmSync } from "node:fs";
import { CentraError } from "../errors.js";
import type { Accelerator } from "./machines.js";

/** Host prerequisites of the lab: root, the Debian packages, and whether KVM really runs guests. */

export class LabHostError extends CentraError {
  constructor(message: string) {
    super("LAB_HOST", message);
  }
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new LabHostError(
      "the lab needs root: it creates a network namespace, a bridge and tap devices (run it with sudo)",
    );
  }
}

/** The Debian packages the lab runs on, as issue 5 lists them (and dnsmasq for the proxyDHCP lab). */
export const LAB_PACKAGES = [
  "qemu-system-x86",
  "ipxe",
  "ipxe-qemu",
  "ovmf",
  "busybox-static",
  "linux-image-amd64",
  "iproute2",
  "dnsmasq-base",
] as const;

export function missingPackages(packages: readonly string[] = LAB_PACKAGES): string[] {
  return packages.filter((p) => {
    const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", p], { encoding: "utf8" });
    return r.status !== 0 || !r.stdout.includes("install ok installed");
  });
}

/** Install what is missing with apt-get; prints what it does. Debian/Ubuntu hosts only. */
export function installMissingPackages(say: (line: string) => void, packages: readonly string[] = LAB_PACKAGES): void {
  const dpkg = spawnSync("dpkg-query", ["--version"], { stdio: "ignore" });
  if (dpkg.status !== 0) {
    say(`not a Debian host: make sure these are installed yourself: ${packages.join(" ")}`);
    return;
  }
  const missing = missingPackages(packages);
  if (missing.length === 0) return;
  say(`installing ${missing.join(" ")} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let result = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing], {
    stdio: "inherit",
    env,
  });
  if (result.status !== 0) {
    // A fresh machine may have no package lists yet.
    spawnSync("apt-get", ["update"], { stdio: "inherit", env });
    result = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing], { stdio: "inherit", env });
  }
  if (result.status !== 0)
    throw new LabHostError(`apt-get could not install ${missing.join(" ")}; install them and run again`);
}

/**
 * KVM when it actually runs a guest, else TCG. /dev/kvm being present is not enough: nested or
 * restricted hosts expose it and then fail on the first MSR write, or hang. So boot the lab kernel
 * once with `centra.lab.probe` (the initrd powers off at once) and see whether it says so.
 */
export async function chooseAccelerator(
  image: { kernel: string; initrd: string },
  scratchLog: string,
  timeoutMs = 15_000,
): Promise<Accelerator> {
  const forced = process.env.CENTRA_LAB_ACCEL;
  if (forced === "kvm" || forced === "tcg") return forced;
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return "tcg";
  }
  rmSync(scratchLog, { force: true });
  const child = spawn(
    "qemu-system-x86_64",
    [
      "-accel",
      "kvm",
      "-cpu",
      "host",
      "-m",
      "256",
      "-display",
      "none",
      "-vga",
      "none",
      "-monitor",
      "none",
      "-nic",
      "none",
      "-no-reboot",
      "-serial",
      `file:${scratchLog}`,
      "-kernel",
      image.kernel,
      "-initrd",
      image.initrd,
      "-append",
      "console=ttyS0 centra.lab.probe quiet",
    ],
    { stdio: "ignore" },
  );
  const exited = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(false);
    }, timeoutMs);
    child.on("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
    child.on("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  let said = "";
  try {
    said = readFileSync(scratchLog, "utf8");
  } catch {
    /* no log: qemu did not start */
  }
  rmSync(scratchLog, { force: true });
  return exited && said.includes("probe ok") ? "kvm" : "tcg";
}
