import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cliArgs, repo, waitFor } from "../support/daemon.js";
import { createLink, requireBinaries, sh, type TestLink } from "../support/netns.js";

/**
 * `Type=notify` as systemd sees it: the daemon runs in its own namespace with `$NOTIFY_SOCKET`
 * pointing at a unix datagram socket this test holds (test/deploy/notify-listener.py, which reads
 * the sender's PID from SCM_CREDENTIALS as systemd does). READY=1 must come from the daemon's own
 * PID (so the unit needs no NotifyAccess=all) and only once every part serves; a SIGHUP is framed
 * by RELOADING=1 and READY=1; SIGTERM says STOPPING=1.
 */

let link: TestLink;
let dir: string;
let listener: ChildProcess;
let daemon: ChildProcess;
let daemonLog = "";
let messages: { pid: number; text: string; healthAtArrival?: string }[] = [];

const health = () => {
  try {
    return sh("ip", [
      "netns",
      "exec",
      link.serverNs!,
      "curl",
      "-s",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "--max-time",
      "5",
      `http://${link.serverIp}/health`,
    ]);
  } catch {
    return "unreachable";
  }
};

before(async () => {
  link = createLink({ clientIp: null });
  dir = mkdtempSync(join(tmpdir(), "readiness-"));
  const net = link.serverIp.replace(/\.1$/, "");
  writeFileSync(
    join(dir, "config.yaml"),
    `interface: ${link.serverIf}
serverAddress: ${link.serverIp}
stateDir: ${join(dir, "state")}
dhcp:
  subnet: ${net}.0
  netmask: 255.255.255.0
  range: { start: ${net}.100, end: ${net}.150 }
`,
  );
});

after(() => {
  if (daemon && daemon.exitCode === null) daemon.kill("SIGKILL");
  if (listener && listener.exitCode === null) listener.kill("SIGKILL");
  link?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("READY=1 comes from the daemon's PID once every part serves; SIGHUP and SIGTERM are announced", async (t) => {
  if (!requireBinaries(t, "python3", "curl")) return;
  const socketPath = join(dir, "notify.sock");
  listener = spawn("python3", [join(repo, "test/deploy/notify-listener.py"), socketPath], { stdio: "pipe" });
  let listenerOut = "";
  listener.stdout!.on("data", (chunk: Buffer) => {
    listenerOut += chunk.toString();
    for (;;) {
      const end = listenerOut.indexOf("\n");
      if (end < 0) break;
      const line = listenerOut.slice(0, end);
      listenerOut = listenerOut.slice(end + 1);
      if (line === "listening") {
        messages.push({ pid: 0, text: "listening" });
        continue;
      }
      const [pid, text] = line.split("\t");
      const message: (typeof messages)[number] = { pid: Number(pid), text: text ?? "" };
      // Asked the moment READY=1 arrives: a manager starts dependent units right then.
      if (message.text.startsWith("READY=1") && !messages.some((m) => m.text.startsWith("READY=1")))
        message.healthAtArrival = health();
      messages.push(message);
    }
  });
  await waitFor("the listener to bind", () => messages.some((m) => m.text === "listening"));
  messages = [];

  daemon = link.spawnInServer(process.execPath, cliArgs(["serve", "--config", join(dir, "config.yaml")]), {
    cwd: repo,
    env: { ...process.env, NOTIFY_SOCKET: socketPath },
  });
  daemon.stdout!.on("data", (chunk: Buffer) => (daemonLog += chunk.toString()));
  daemon.stderr!.on("data", (chunk: Buffer) => (daemonLog += chunk.toString()));
  const context = () => `messages: ${JSON.stringify(messages)}\nserver log:\n${daemonLog.slice(-3000)}`;

  await waitFor("READY=1", () => messages.some((m) => m.text.startsWith("READY=1")), { context });
  const ready = messages.find((m) => m.text.startsWith("READY=1"))!;
  assert.equal(ready.pid, daemon.pid, `READY=1 must come from the main PID: ${context()}`);
  assert.equal(ready.healthAtArrival, "200", `every part serves when READY=1 arrives: ${context()}`);
  assert.match(ready.text, /STATUS=serving on /);
  await waitFor("the serving log line", () => daemonLog.includes('"msg":"serving"'), { context });
  assert.equal(messages.length, 1, context());

  daemon.kill("SIGHUP");
  await waitFor("RELOADING=1 then READY=1", () => messages.length >= 3, { context });
  assert.match(messages[1]!.text, /^RELOADING=1\|MONOTONIC_USEC=\d+$/, context());
  assert.match(messages[2]!.text, /^READY=1\|/, context());
  assert.match(daemonLog, /SIGHUP: config reloaded/);

  const exited = new Promise<number | null>((resolve) => daemon.once("exit", (code) => resolve(code)));
  daemon.kill("SIGTERM");
  assert.equal(await exited, 0, context());
  assert.equal(messages.at(-1)!.text, "STOPPING=1", context());
  assert.ok(
    messages.every((m) => m.pid === daemon.pid),
    context(),
  );
});
