import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { isCI } from "./netns.js";

/**
 * A throwaway PostgreSQL cluster for one test file: `initdb` + `pg_ctl` in a temporary directory,
 * run as an unprivileged user (the server refuses to run as root), listening only on a unix socket
 * in that directory. A socket is a file, so daemons in other network namespaces reach it too, and
 * no TCP port is shared with the tests running beside this one. Removed by `stop()`.
 */
export interface PostgresCluster {
  /** The directory holding the socket (`host` for `pg`, `?host=` in a URL). */
  socketDir: string;
  port: number;
  /** The superuser, trusted on the socket. */
  user: string;
  /** With `tls`: TCP on 127.0.0.1:`tcpPort`, TLS required, passwords checked (scram), and the CA's PEM file. */
  tcpPort?: number;
  caFile?: string;
  /** A fresh, empty database; its URL (`postgres://postgres@localhost:port/name?host=socketDir`). */
  createDatabase(): Promise<string>;
  /** A URL of the maintenance database `postgres`. */
  url(database?: string): string;
  /** Stop the server, keeping its data (a database outage); `resume` starts it again. */
  pause(): void;
  resume(): void;
  stop(): void;
}

/** Debian's server binaries (package `postgresql-15`); `PG_BIN` overrides. */
export function postgresBinDir(): string | undefined {
  const candidates = [process.env.PG_BIN, "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"];
  return candidates.find((dir) => dir !== undefined && existsSync(join(dir, "pg_ctl")));
}

/** The unprivileged account the cluster runs as: the `postgres` system user when present, else `nobody`. */
function clusterUser(): string {
  return spawnSync("id", ["-u", "postgres"]).status === 0 ? "postgres" : "nobody";
}

function uidGid(user: string): { uid: number; gid: number } {
  const uid = Number(execFileSync("id", ["-u", user], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", user], { encoding: "utf8" }).trim());
  return { uid, gid };
}

/**
 * Start a cluster, or say why not: undefined (with the reason in `skip`) on a developer machine
 * without the binaries or root; under CI=true a missing PostgreSQL is a failure, never a skip.
 */
export async function startPostgres(
  skip?: (why: string) => void,
  options: { tls?: boolean } = {},
): Promise<PostgresCluster | undefined> {
  const bin = postgresBinDir();
  const why = !bin
    ? "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; scripts/bootstrap installs postgresql)"
    : process.getuid?.() !== 0
      ? "starting a throwaway PostgreSQL cluster as another user needs root"
      : undefined;
  if (why) {
    if (isCI) throw new Error(`${why}: required under CI`);
    skip?.(why);
    return undefined;
  }
  const user = clusterUser();
  const { uid, gid } = uidGid(user);
  const dir = mkdtempSync(join(tmpdir(), "centra-pg-"));
  chmodSync(dir, 0o755);
  const data = join(dir, "data");
  mkdirSync(data, { mode: 0o700 });
  chownSync(data, uid, gid);
  chownSync(dir, uid, gid);
  const asUser = (cmd: string, args: string[]) =>
    execFileSync("runuser", ["-u", user, "--", join(bin!, cmd), ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      cwd: dir,
    });
  // A port number still matters with a unix socket: it names the socket file (.s.PGSQL.<port>).
  const port = 20_000 + (randomBytes(2).readUInt16BE(0) % 40_000);
  // fsync off: a test never survives a power cut, and the box is shared. Durability of leases is
  // the server's promise (it waits for COMMIT), not the test cluster's.
  // TLS: a self-signed certificate for 127.0.0.1, TCP on loopback only, and every TCP login by password.
  const tcpPort = options.tls ? port : undefined;
  if (options.tls) {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        join(dir, "server.key"),
        "-out",
        join(dir, "server.crt"),
      ],
      { stdio: "ignore" },
    );
    chmodSync(join(dir, "server.key"), 0o600);
    chownSync(join(dir, "server.key"), uid, gid);
    chownSync(join(dir, "server.crt"), uid, gid);
  }
  const serverOptions = [
    options.tls
      ? `-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=${dir}/server.crt -c ssl_key_file=${dir}/server.key`
      : `-c listen_addresses=''`,
    `-c unix_socket_directories=${dir}`,
    `-p ${port}`,
    "-c fsync=off",
    "-c full_page_writes=off",
    "-c max_connections=100",
    "-c shared_buffers=16MB",
  ].join(" ");
  const start = () =>
    asUser("pg_ctl", ["-D", data, "-o", serverOptions, "-l", join(dir, "log"), "-w", "-t", "60", "start"]);
  try {
    asUser("initdb", [
      "-D",
      data,
      "-U",
      "postgres",
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C",
    ]);
    start();
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start a test PostgreSQL cluster: ${(error as { stderr?: string }).stderr ?? error}`);
  }
  const url = (database = "postgres") =>
    `postgres://postgres@localhost:${port}/${database}?host=${encodeURIComponent(dir)}`;
  let databases = 0;
  return {
    socketDir: dir,
    port,
    ...(tcpPort !== undefined ? { tcpPort, caFile: join(dir, "server.crt") } : {}),
    user: "postgres",
    url,
    async createDatabase() {
      const name = `t${process.pid}_${databases++}_${randomBytes(3).toString("hex")}`;
      const client = new pg.Client({ host: dir, port, user: "postgres", database: "postgres" });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    pause() {
      asUser("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
    },
    resume() {
      start();
    },
    stop() {
      try {
        asUser("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {
        /* already down */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
