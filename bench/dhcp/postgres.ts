/**
 * A throwaway PostgreSQL cluster for bench/dhcp/run.sh (test/support/postgres.ts: initdb + pg_ctl
 * as an unprivileged user, a unix socket in a temporary directory, fsync off as in the tests).
 * Prints `SOCKET_DIR PORT` once it accepts connections; SIGTERM stops and removes it.
 */
import { startPostgres } from "../../test/support/postgres.js";

const cluster = await startPostgres((why) => {
  process.stderr.write(`${why}\n`);
  process.exit(1);
});
if (!cluster) process.exit(1);
process.stdout.write(`${cluster.socketDir} ${cluster.port}\n`);
const stop = () => {
  cluster.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setInterval(() => {}, 1 << 30);
