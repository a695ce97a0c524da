/**
 * Runs Centra PXE's HTTP boot service alone for bench/http/run.sh: `serve-ours.ts STATE_DIR PORT`.
 * Prints `listening <port>` once bound; SIGTERM stops it.
 */
import { parseConfig } from "../../src/config/load.js";
import { createHttpService } from "../../src/http/server.js";
import { silentLogger } from "../../src/log.js";

const [stateDir, port = "0"] = process.argv.slice(2);
if (!stateDir) {
  process.stderr.write("usage: serve-ours.ts STATE_DIR [PORT]\n");
  process.exit(2);
}
const config = parseConfig(
  `stateDir: ${JSON.stringify(stateDir)}\nserverAddress: 127.0.0.1\ndhcp: { mode: off }\nhttp: { port: ${Number(port)}, bindAddress: 127.0.0.1, maxConnectionsPerAddress: 0 }\nlogLevel: silent\n`,
);
const service = createHttpService({ config, logger: silentLogger });
await service.start();
process.stdout.write(`listening ${service.address()!.port}\n`);
process.once("SIGTERM", () => void service.stop().then(() => process.exit(0)));
process.once("SIGINT", () => void service.stop().then(() => process.exit(0)));
