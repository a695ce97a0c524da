import assert from "node:assert/strict";
import { test } from "node:test";
import { LOCAL_GENERAL_H, localEntropyH } from "./build.js";

test("a plain-HTTP build leaves out the timer entropy sources; an https:// build keeps iPXE's defaults", () => {
  const http = localEntropyH("http://10.0.100.10");
  // Timer jitter is what iPXE's eager DRBG startup samples for seconds without RDRAND or EFI_RNG.
  assert.ok(http.split("\n").includes("#undef ENTROPY_EFITICK"));
  assert.ok(http.split("\n").includes("#undef ENTROPY_RTC"));
  assert.ok(!/RDRAND|EFIRNG/.test(http), "hardware and firmware sources stay: they cost nothing");
  const https = localEntropyH("https://10.0.100.10:8443");
  assert.doesNotMatch(https, /#undef/, "TLS needs its random bits wherever they come from");
  assert.match(LOCAL_GENERAL_H, /#define DOWNLOAD_PROTO_HTTPS/);
});
