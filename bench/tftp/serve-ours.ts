/**
 * Our TFTP server as the daemon runs it, for the benchmark: `serve-ours.ts <dir-holding-ipxe/> <address> <port>`.
 * Logs JSON lines at info (one per transfer) to stdout, like `centra-pxe serve`. TFTP_WORKERS
 * overrides the number of transfer worker threads (default: one per core, up to 4).
 */
import { parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/log.js";
import { createTftpService } from "../../src/tftp/index.js";

const [stateDir, bindAddress, port] = process.argv.slice(2);
if (!stateDir || !bindAddress || !port) throw new Error("usage: serve-ours.ts <stateDir> <address> <port>");
// Every client of the benchmark comes from one address, standing for as many machines: the
// per-address limits (admission.ts) are those of the whole server.
const limits = {
  maxTransfersPerClient: 2048,
  maxUnverifiedPerClient: 256,
  requestsPerSecondPerClient: 1000,
  requestBurstPerClient: 1000,
};
const config = parseConfig(JSON.stringify({ stateDir, tftp: { bindAddress, port: Number(port), limits } }));
const workers = process.env.TFTP_WORKERS === undefined ? undefined : Number(process.env.TFTP_WORKERS);
const service = createTftpService({ config, logger: createLogger("info"), workers });
await service.start();
process.stderr.write("ready\n");
const stop = () => void service.stop().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
