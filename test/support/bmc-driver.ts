/**
 * Run one BmcClient operation and print its result as JSON: the e2e tests start this inside a lab
 * namespace (`ip netns exec NS node --import tsx bmc-driver.ts …`), where the lab's BMCs listen.
 *   bmc-driver.ts '<endpoint JSON>' power-status | power <action> | set-boot <device> | get-boot | identity
 */
import { createBmcClient } from "../../src/bmc/index.js";
import type { BmcEndpoint, BootDevice, PowerAction } from "../../src/bmc/client.js";

const [endpointJson, operation, argument] = process.argv.slice(2);
const endpoint = JSON.parse(endpointJson!) as BmcEndpoint;
// ipmi_sim has no "Get Channel Cipher Suites": ipmitool's own choice would wait ~10 s for it every run.
const client = createBmcClient(endpoint, { ipmi: { cipherSuite: 3 } });
const result =
  operation === "power-status"
    ? await client.powerStatus()
    : operation === "power"
      ? await client.power(argument as PowerAction)
      : operation === "set-boot"
        ? await client.setBootDevice(argument as BootDevice)
        : operation === "get-boot"
          ? await client.getBootDevice()
          : operation === "identity"
            ? await client.identity()
            : (() => {
                throw new Error(`unknown operation ${operation}`);
              })();
process.stdout.write(`${JSON.stringify(result ?? null)}\n`);
