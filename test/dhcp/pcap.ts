// The reader moved to src/files/pcap.ts (unit tests beside the code use it, and src/ never imports
// from test/); this keeps the old import path working for tests written against it.
export { readPcap, type CapturedDatagram } from "../../src/files/pcap.js";
