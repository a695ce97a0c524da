import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseIpv4 } from "../config/primitives.js";
import { CentraError } from "../errors.js";
import { encodeX509SignatureLists, pemCertificates } from "./signature-list.js";

const run = promisify(execFile);

/**
 * `centra-pxe tls init`: a CA of this site and a server certificate it signs, made with openssl(1)
 * (node:crypto makes keys but not certificates). Files in `dir` (stateDir/tls):
 *
 * ```
 * ca.pem  ca-key.pem          the CA: what clients trust (iPXE builds embed it, firmware enrols it)
 * ca.esl                      the CA as an EFI_SIGNATURE_LIST, for OVMF's fw_cfg etc/edk2/https/cacerts
 * server.pem  server-key.pem  the HTTPS listener's certificate and key (http.tls.cert / key)
 * ```
 *
 * RSA keys, because EDK2 offers only RSA-authenticated suites (DHE-RSA and plain RSA key exchange,
 * the latter needing `keyEncipherment`). An existing CA is kept (machines trust it already); the
 * server certificate is issued again when asked or when missing.
 */
export const TLS_FILES = {
  ca: "ca.pem",
  caKey: "ca-key.pem",
  caSignatureList: "ca.esl",
  cert: "server.pem",
  key: "server-key.pem",
} as const;

export interface TlsInitResult {
  dir: string;
  files: { [K in keyof typeof TLS_FILES]: string };
  /** Files this run wrote. */
  written: string[];
  /** The server certificate's subjectAltName as openssl prints it. */
  subjectAltName: string;
}

/**
 * The subjectAltName of a server certificate for `names` (addresses or host names). An address goes
 * in both forms: EDK2's HTTP boot (seen with OVMF) matches the host of an IP-address URL against
 * DNS names and fails the handshake on a certificate that has the address only as an iPAddress
 * entry; iPXE, OpenSSL and browsers match the iPAddress entry.
 */
export function subjectAltNames(names: readonly string[]): string {
  return names.flatMap((n) => (parseIpv4(n) !== undefined ? [`IP:${n}`, `DNS:${n}`] : [`DNS:${n}`])).join(",");
}

export async function initTls(
  dir: string,
  options: { names: readonly string[]; renew?: boolean; days?: number },
): Promise<TlsInitResult> {
  if (options.names.length === 0)
    throw new CentraError("TLS", "the server certificate needs at least one address or name");
  for (const name of options.names)
    if (!/^[A-Za-z0-9.-]{1,253}$/.test(name))
      throw new CentraError("TLS", `${JSON.stringify(name)} is neither an IPv4 address nor a host name`);
  const files = Object.fromEntries(
    Object.entries(TLS_FILES).map(([k, f]) => [k, join(dir, f)]),
  ) as TlsInitResult["files"];
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const work = await mkdtemp(join(dir, ".work-"));
  try {
    if (!(await exists(files.ca)) || !(await exists(files.caKey))) {
      await openssl([
        "req",
        "-x509",
        "-newkey",
        "rsa:3072",
        "-nodes",
        "-keyout",
        join(work, TLS_FILES.caKey),
        "-out",
        join(work, TLS_FILES.ca),
        "-days",
        "3650",
        "-subj",
        `/O=Centra PXE/CN=Centra PXE CA ${options.names[0]}`,
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ]);
      await place(work, TLS_FILES.caKey, files.caKey, 0o600);
      await place(work, TLS_FILES.ca, files.ca, 0o644);
      written.push(files.caKey, files.ca);
    }
    const caPem = await readFile(files.ca, "utf8");
    const esl = encodeX509SignatureLists(pemCertificates(caPem));
    if ((await readFile(files.caSignatureList).catch(() => undefined))?.equals(esl) !== true) {
      await writeFile(join(work, TLS_FILES.caSignatureList), esl);
      await place(work, TLS_FILES.caSignatureList, files.caSignatureList, 0o644);
      written.push(files.caSignatureList);
    }
    const san = subjectAltNames(options.names);
    if (options.renew || !(await exists(files.cert)) || !(await exists(files.key))) {
      const extensions = join(work, "server.ext");
      await writeFile(
        extensions,
        [
          "basicConstraints=critical,CA:FALSE",
          "keyUsage=critical,digitalSignature,keyEncipherment",
          "extendedKeyUsage=serverAuth",
          `subjectAltName=${san}`,
          "",
        ].join("\n"),
      );
      await openssl([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        join(work, TLS_FILES.key),
        "-out",
        join(work, "server.csr"),
        "-subj",
        `/O=Centra PXE/CN=${options.names[0]}`,
      ]);
      await openssl([
        "x509",
        "-req",
        "-in",
        join(work, "server.csr"),
        "-CA",
        files.ca,
        "-CAkey",
        files.caKey,
        "-set_serial",
        `0x${Date.now().toString(16)}`,
        "-days",
        String(options.days ?? 825),
        "-sha256",
        "-extfile",
        extensions,
        "-out",
        join(work, TLS_FILES.cert),
      ]);
      await place(work, TLS_FILES.key, files.key, 0o600);
      await place(work, TLS_FILES.cert, files.cert, 0o644);
      written.push(files.key, files.cert);
    }
    const cert = new X509Certificate(await readFile(files.cert));
    return { dir, files, written, subjectAltName: cert.subjectAltName ?? "" };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run("openssl", args, { timeout: 60_000 });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? (error as Error).message).trim();
    throw new CentraError("TLS", `openssl ${args[0]} failed: ${stderr} (Debian: apt-get install openssl)`, {
      cause: error,
    });
  }
}

/** Move a finished file from the work directory into place, with its mode set before anyone can read it. */
async function place(work: string, name: string, to: string, mode: number): Promise<void> {
  await chmod(join(work, name), mode);
  await rename(join(work, name), to);
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
