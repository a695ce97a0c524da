import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The DMTF Redfish mockup server (vendored beside the repository, `../shared/vendor`, or
 * `$CENTRA_PXE_VENDOR_DIR`) serving its `public-rackmount1` tree on a loopback address of its own
 * (127.x.y.z, port 8000: no two runs meet), over HTTP or over HTTPS with a throwaway self-signed
 * certificate. It accepts PATCH into memory and POST to an action without effect, and logs each
 * request's body on stdout, which `log()` returns.
 */
export interface RedfishMockup {
  address: string;
  port: number;
  scheme: "http" | "https";
  /** sha256 of the certificate, `AB:CD:…` (HTTPS only). */
  fingerprint?: string;
  /** What the server printed (its request log). */
  log(): string;
  stop(): Promise<void>;
}

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export function vendorDir(): string {
  return process.env.CENTRA_PXE_VENDOR_DIR ?? join(repo, "..", "shared", "vendor");
}

export function mockupServerScript(): string | undefined {
  const script = join(vendorDir(), "redfish-mockup-server", "redfishMockupServer.py");
  return existsSync(script) ? script : undefined;
}

export async function startRedfishMockup(options: { tls?: boolean } = {}): Promise<RedfishMockup> {
  const script = mockupServerScript();
  if (script === undefined)
    throw new Error(`no Redfish mockup server under ${vendorDir()} (set CENTRA_PXE_VENDOR_DIR)`);
  const dir = mkdtempSync(join(tmpdir(), "centra-redfish-"));
  const address = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  const port = 8000;
  const args = [script, "-S", "-D", join(dirname(script), "public-rackmount1"), "-H", address, "-p", String(port)];
  let fingerprint: string | undefined;
  if (options.tls) {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"].concat([
        "-subj",
        "/CN=bmc.test",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ]),
      { stdio: "ignore" },
    );
    const text = execFileSync("openssl", ["x509", "-in", join(dir, "cert.pem"), "-noout", "-fingerprint", "-sha256"], {
      encoding: "utf8",
    });
    fingerprint = text.trim().split("=")[1];
    args.push("-s", "--cert", join(dir, "cert.pem"), "--key", join(dir, "key.pem"));
  }
  // -u: its request log unbuffered, so a test reads each line as the request is served.
  const child: ChildProcess = spawn("python3", ["-u", ...args], { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await answers(address, port, options.tls === true))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`the Redfish mockup did not start on ${address}:${port}: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const mockup: RedfishMockup = {
    address,
    port,
    scheme: options.tls ? "https" : "http",
    log: () => output,
    stop,
  };
  if (fingerprint !== undefined) mockup.fingerprint = fingerprint;
  return mockup;
}

/** Whether something accepts a connection there (and, over TLS, completes a handshake). */
function answers(address: string, port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolvePromise) => {
    if (tls) {
      const socket = connect({ host: address, port, rejectUnauthorized: false });
      socket.once("secureConnect", () => {
        socket.destroy();
        resolvePromise(true);
      });
      socket.once("error", () => resolvePromise(false));
      return;
    }
    const req = request({ host: address, port, path: "/redfish/v1/", method: "GET" }, (res) => {
      res.resume();
      resolvePromise(true);
    });
    req.once("error", () => resolvePromise(false));
    req.end();
  });
}
