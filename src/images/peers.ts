import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import type { Config } from "../config/schema.js";
import type { Service, ServiceHealth } from "../contracts/service.js";
import { currentVersion, imageDir, imageTree, imageVersionDir } from "../files/state-dir.js";
import type { Logger } from "../log.js";
import type { ImageVersionRecord, Store } from "../store/store.js";
import { fsyncPath, useImage, writeWithDigest } from "./images.js";

/**
 * Several servers on one database share the image *records* but each serves the files from its own
 * stateDir (PRODUCT.md §6). This part notices a registered version whose files this host lacks,
 * says so in `/health` (part `images`), and copies them from a peer's HTTP image path when
 * `peers:` names some, accepting a file only when its sha256 is the one recorded when it was added.
 */

/** The roles of a version whose file is missing here or has another size than recorded. */
export async function missingFiles(stateDir: string, record: ImageVersionRecord): Promise<string[]> {
  const missing: string[] = [];
  for (const [role, file] of Object.entries(record.files)) {
    const found = await stat(join(imageVersionDir(stateDir, record.name, record.version, record.arch), role)).catch(
      () => undefined,
    );
    if (!found?.isFile() || found.size !== file.size) missing.push(role);
  }
  return missing;
}

/**
 * Copy one version's files from `peer` (`http://host:port`), verified by their recorded sha256,
 * into a hidden directory renamed into place: a reader never sees a partial or unverified version.
 */
export async function fetchVersionFromPeer(
  stateDir: string,
  record: ImageVersionRecord,
  peer: string,
  timeoutMs = 600_000,
): Promise<void> {
  const parent = imageDir(stateDir, record.name, record.arch);
  await mkdir(parent, { recursive: true });
  const temp = join(parent, `.incoming-${randomBytes(6).toString("hex")}`);
  await mkdir(temp);
  try {
    for (const [role, file] of Object.entries(record.files)) {
      const url = `${peer.replace(/\/+$/, "")}/boot/images/${encodeURIComponent(imageTree(record.name, record.arch))}/${encodeURIComponent(record.version)}/${encodeURIComponent(role)}`;
      const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok || !response.body) throw new Error(`${url}: HTTP ${response.status}`);
      const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
      const sha256 = await writeWithDigest(body, join(temp, role));
      if (sha256 !== file.sha256)
        throw new Error(`${url}: sha256 ${sha256} is not the recorded ${file.sha256}; not taken`);
    }
    await fsyncPath(temp);
    await rename(temp, imageVersionDir(stateDir, record.name, record.version, record.arch));
    await fsyncPath(parent);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  // The first version of an image on this host becomes current, as `images add` does.
  if ((await currentVersion(stateDir, record.name, record.arch)) === undefined)
    await useImage(stateDir, record.name, record.version, record.arch);
}

/** `storage.peers`: the other servers on the shared database. */
const peersOf = (config: Config): readonly string[] => (config.storage.kind === "postgres" ? config.storage.peers : []);

export interface ImageReplicaOptions {
  store: Store;
  config: Config;
  logger: Logger;
  /** How often the records are checked against the files; default 10 s. */
  intervalMs?: number;
}

/** The daemon part that keeps this host's image files in step with the shared records. */
export function createImageReplicaService(options: ImageReplicaOptions): Service & { scan(): Promise<void> } {
  const log = options.logger.child({ part: "images" });
  let config = options.config;
  let missing: string[] = [];
  let lastError: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const pass = async (fetchFromPeers: boolean) => {
    const { stateDir } = config;
    const peers = fetchFromPeers ? peersOf(config) : [];
    const lacking: string[] = [];
    for (const record of await options.store.images.list()) {
      const roles = await missingFiles(stateDir, record);
      if (!roles.length) continue;
      let fetched = false;
      for (const peer of peers) {
        try {
          // A partial version on disk (a file deleted by hand) is not overwritten; it stays reported.
          const dir = imageVersionDir(stateDir, record.name, record.version, record.arch);
          if (await stat(dir).catch(() => undefined)) break;
          await fetchVersionFromPeer(stateDir, record, peer);
          log.info(
            { image: record.name, arch: record.arch, version: record.version, peer },
            "image version copied from a peer",
          );
          fetched = true;
          lastError = undefined;
          break;
        } catch (error) {
          lastError = (error as Error).message;
          log.warn(
            { image: record.name, version: record.version, peer, err: error },
            "could not copy an image version from a peer",
          );
        }
      }
      if (!fetched) lacking.push(`${imageTree(record.name, record.arch)}/${record.version} (${roles.join(", ")})`);
    }
    missing = lacking;
  };
  const scan = () => {
    running ??= pass(true)
      .catch((error: unknown) => {
        lastError = (error as Error).message;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  return {
    name: "images",
    scan,
    async start() {
      // What is missing is known before the daemon says it serves; the copying is not awaited: a
      // peer that does not answer must not hold the start for its timeout.
      await pass(false).catch((error: unknown) => {
        lastError = (error as Error).message;
      });
      void scan();
      timer = setInterval(() => void scan(), options.intervalMs ?? 10_000);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
    async reload(next) {
      config = next;
      void scan();
    },
    health(): ServiceHealth {
      if (!missing.length) return { ok: true };
      const how = peersOf(config).length
        ? `copying from peers failed${lastError ? `: ${lastError}` : ""}`
        : "add them here with `centra-pxe images add`, or name a server that has them in storage.peers";
      return {
        ok: false,
        detail: `registered image versions without their files on this server: ${missing.join("; ")}; ${how}`,
      };
    },
  };
}
