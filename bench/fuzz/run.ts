/**
 * The fuzz campaign from the command line (as root: it builds network namespaces):
 *
 *   node --import tsx bench/fuzz/run.ts [--seed N] [--count N] [--http-count N] [--repeat dhcp,tftp,http] [--trace-gc]
 *     [--log FILE] [--json]
 *
 * `--count` datagrams each of DHCP and TFTP (default 10^6) and `--http-count` requests (default
 * count/10); `--repeat` runs the floods named a second time, with fresh input, after the three
 * (memory that is bounded stays level in the second round; a leak grows again); `--trace-gc` adds
 * the daemon's V8 heap after full collections, per flood. Prints the summary table; exits 1 when the daemon crashed or a real client was not served.
 */
import { parseArgs } from "node:util";
import { runCampaign, summarize, type Protocol } from "./campaign.js";

const { values } = parseArgs({
  options: {
    seed: { type: "string" },
    count: { type: "string", default: "1000000" },
    "http-count": { type: "string" },
    repeat: { type: "string", default: "" },
    "trace-gc": { type: "boolean", default: false },
    log: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 0x7fffffff);
const count = Number(values.count);
const http = values["http-count"] !== undefined ? Number(values["http-count"]) : Math.round(count / 10);
process.stdout.write(
  `fuzz campaign: seed ${seed} (replay with --seed ${seed}), ${count} DHCP, ${count} TFTP, ${http} HTTP\n`,
);
const protocols: readonly string[] = ["dhcp", "tftp", "http"];
const repeat = values.repeat.split(",").filter((p): p is Protocol => p !== "" && protocols.includes(p));
const unknown = values.repeat.split(",").filter((p) => p !== "" && !protocols.includes(p));
if (unknown.length) throw new Error(`--repeat takes dhcp, tftp and http, not ${unknown.join(", ")}`);
const result = await runCampaign({
  seed,
  dhcp: count,
  tftp: count,
  http,
  repeat,
  traceGc: values["trace-gc"],
  logFile: values.log,
  progress: (line) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`),
});
process.stdout.write(`\n${summarize(result)}\n`);
if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
const unserved = result.probes.some((p) => [p.dhcp, p.tftp, p.health, p.bootFile].some((v) => v !== "ok"));
process.exit(result.crash || unserved ? 1 : 0);
