import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { walkCommands } from "../../src/cli/generated-docs.js";
import { buildProgram } from "../../src/cli/program.js";
import { type ApiServer, startApiServer } from "../support/api-server.js";
import { cliArgs, repo } from "../support/daemon.js";
import { findBinary, isCI } from "../support/netns.js";
import { checkoutReadableBy } from "../support/users.js";

/**
 * The CLI as an operator meets it, each command its own process: wrong paths create nothing and
 * say which path was looked at, every data command's --json parses, exit statuses are 0/1/2, reads
 * work on a database the user cannot write, and completion and man page cover every command.
 */

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Environment without the operator's own CENTRA_PXE_* settings, so a test says exactly what it sets. */
const cleanEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith("CENTRA_PXE_")) delete env[name];
  return env;
};

function cli(args: string[], env: Record<string, string> = {}, asUser?: string): Promise<Run> {
  const [command, argv] = asUser
    ? ["runuser", ["-u", asUser, "--", process.execPath, ...cliArgs(args)]]
    : [process.execPath, cliArgs(args)];
  return new Promise((resolve) => {
    execFile(command, argv, { cwd: repo, env: { ...cleanEnv(), ...env }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A loopback TCP port nothing listens on (bound once to get it, then closed). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const root = mkdtempSync(join(tmpdir(), "cli-paths-"));
const bootloaders = join(root, "loaders");
const kernel = join(root, "bzImage");
const initrd = join(root, "initrd");

/** A bootloader source good enough for `init`: a PE/EFI image and a PXE file of plausible size. */
function makeBootloaderSource(dir: string): void {
  mkdirSync(dir);
  const efi = Buffer.alloc(4096);
  efi.write("MZ", 0, "latin1");
  efi.writeUInt32LE(0x80, 0x3c);
  efi.write("PE\0\0", 0x80, "latin1");
  writeFileSync(join(dir, "ipxe.efi"), efi);
  writeFileSync(join(dir, "undionly.kpxe"), Buffer.alloc(70_000, 1));
}

before(() => {
  chmodSync(root, 0o755); // mkdtemp makes it 0700; the read-only test reads below it as another user
  makeBootloaderSource(bootloaders);
  writeFileSync(kernel, Buffer.alloc(10_000, 2));
  writeFileSync(initrd, Buffer.alloc(20_000, 3));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe("commands that read state never create it", () => {
  const missing = join(root, "stat"); // the typo of the issue: /tmp/stat for /tmp/state
  const commands: string[][] = [
    ["token", "list"],
    ["token", "create"],
    ["token", "revoke", "0123abcd"],
    ["leases"],
    ["leases", "--json"],
    ["images", "list"],
    ["images", "add", "nixos", "--kernel", kernel, "--initrd", initrd],
    ["images", "use", "nixos", "24.11"],
    ["images", "remove", "nixos", "24.11"],
  ];

  test("a mistyped --state-dir is an error naming the path, and nothing is created there", async () => {
    for (const command of commands) {
      const run = await cli([...command, "--state-dir", missing]);
      assert.equal(run.code, 1, `${command.join(" ")}: ${run.stdout}${run.stderr}`);
      assert.equal(
        run.stderr,
        `centra-pxe: no state directory at ${missing} (run \`centra-pxe init\` first, or pass the right --state-dir/--config)\n`,
        command.join(" "),
      );
      assert.equal(existsSync(missing), false, `${command.join(" ")} created ${missing}`);
    }
  });

  test("CENTRA_PXE_STATE_DIR is where they look when --state-dir is not given", async () => {
    const run = await cli(["token", "list"], { CENTRA_PXE_STATE_DIR: missing });
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`no state directory at ${missing} `));
    assert.equal(existsSync(missing), false);
  });

  test("a file given as the state directory is 'not a directory'; one without a database is not initialised", async () => {
    const file = await cli(["leases", "--state-dir", "/etc/hostname"]);
    assert.equal(file.code, 1);
    assert.match(file.stderr, /^centra-pxe: \/etc\/hostname: not a directory/);
    const bare = join(root, "bare");
    mkdirSync(bare);
    const empty = await cli(["token", "list", "--state-dir", bare]);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, new RegExp(`no database at ${bare}/centra-pxe.db.*run \`centra-pxe init\` first`));
    assert.equal(existsSync(join(bare, "centra-pxe.db")), false);
  });

  test("init is all or nothing: bad bootloaders leave no state directory, not even its parents", async () => {
    const target = join(root, "new", "deep", "state");
    const run = await cli(["init", "--state-dir", target, "--bootloaders", "/nonexistent"]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /\/nonexistent\/undionly\.kpxe: missing/);
    assert.match(run.stderr, /\/nonexistent\/ipxe\.efi: missing/);
    assert.equal(existsSync(join(root, "new")), false);
  });

  test("init on a path through a file, or onto a file, says so in words", async () => {
    const through = await cli(["init", "--state-dir", "/etc/passwd/state", "--bootloaders", bootloaders]);
    assert.equal(through.code, 1);
    assert.equal(through.stderr, "centra-pxe: /etc/passwd/state: a part of the path is a file, not a directory\n");
    const onto = await cli(["init", "--state-dir", "/etc/passwd", "--bootloaders", bootloaders]);
    assert.equal(onto.code, 1);
    assert.equal(onto.stderr, "centra-pxe: cannot create /etc/passwd: it exists already and is not a directory\n");
  });
});

describe("--json on every command whose output is data", () => {
  const stateDir = join(root, "state");

  test("init, token create/list, images add/list, leases, version", async () => {
    const init = await cli(["init", "--state-dir", stateDir, "--bootloaders", bootloaders, "--json"]);
    assert.equal(init.code, 0, init.stderr);
    const report = JSON.parse(init.stdout) as { stateDir: string; installed: string[]; missing: string[] };
    assert.equal(report.stateDir, stateDir);
    assert.deepEqual(report.installed.sort(), ["ipxe.efi", "undionly.kpxe"]);

    const created = await cli(["token", "create", "--name", "ci", "--state-dir", stateDir, "--json"]);
    assert.equal(created.code, 0, created.stderr);
    const token = JSON.parse(created.stdout) as { id: string; name: string; token: string };
    assert.equal(token.name, "ci");
    assert.match(token.token, /^cpxe_/);

    const tokens = JSON.parse((await cli(["token", "list", "--state-dir", stateDir, "--json"])).stdout) as {
      id: string;
      hash?: string;
    }[];
    assert.deepEqual(
      tokens.map((t) => t.id),
      [token.id],
    );
    assert.equal(tokens[0]!.hash, undefined, "never the hash");

    const added = await cli(["images", "add", "nixos", "--kernel", kernel, "--initrd", initrd, "--version", "24.11"], {
      CENTRA_PXE_STATE_DIR: stateDir,
    });
    assert.equal(added.code, 0, added.stderr);
    const addedJson = await cli(
      ["images", "add", "nixos", "--kernel", kernel, "--initrd", initrd, "--version", "24.12", "--json"],
      { CENTRA_PXE_STATE_DIR: stateDir },
    );
    assert.equal(addedJson.code, 0, addedJson.stderr);
    const record = JSON.parse(addedJson.stdout) as { version: string; files: { kernel: { size: number } } };
    assert.equal(record.version, "24.12");
    assert.equal(record.files.kernel.size, 10_000);

    const images = JSON.parse((await cli(["images", "list", "--state-dir", stateDir, "--json"])).stdout) as {
      version: string;
      current: boolean;
    }[];
    assert.deepEqual(
      images.map((i) => [i.version, i.current]),
      [
        ["24.11", true],
        ["24.12", false],
      ],
    );

    const leases = await cli(["leases", "--state-dir", stateDir, "--json"]);
    assert.equal(leases.code, 0, leases.stderr);
    assert.deepEqual(JSON.parse(leases.stdout), []);

    const version = await cli(["version", "--json"]);
    assert.equal(version.code, 0, version.stderr);
    const info = JSON.parse(version.stdout) as { name: string; version: string; commit: string | null; node: string };
    const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { version: string };
    assert.equal(info.name, "centra-pxe");
    assert.equal(info.version, pkg.version);
    assert.equal(info.node, process.version);
    if (existsSync(join(repo, ".git"))) assert.match(info.commit ?? "", /^[0-9a-f]{40}$/);
    assert.match((await cli(["version"])).stdout, new RegExp(`^centra-pxe ${pkg.version} \\(commit \\S+\\) node v`));
  });
});

describe("images per architecture", () => {
  const stateDir = join(root, "state-arch");

  test("images add --arch arm64 keeps its own versions and current; list shows the arch; use and remove take --arch", async () => {
    const env = { CENTRA_PXE_STATE_DIR: stateDir };
    assert.equal((await cli(["init", "--state-dir", stateDir, "--bootloaders", bootloaders])).code, 0);
    const add = (version: string, ...arch: string[]) =>
      cli(["images", "add", "debian", "--kernel", kernel, "--initrd", initrd, "--version", version, ...arch], env);
    assert.equal((await add("12.5")).code, 0);
    const arm = await add("12.5", "--arch", "arm64");
    assert.equal(arm.code, 0, arm.stderr);
    assert.match(arm.stdout, /^added debian \(arm64\) 12\.5$/m);
    assert.equal((await add("12.6", "--arch", "arm64")).code, 0);
    assert.ok(existsSync(join(stateDir, "images", "debian", "12.5", "kernel")), "x86_64 keeps images/NAME/");
    assert.ok(existsSync(join(stateDir, "images", "debian@arm64", "12.6", "kernel")));

    const used = await cli(["images", "use", "debian", "12.6", "--arch", "arm64"], env);
    assert.equal(used.code, 0, used.stderr);
    assert.equal(used.stdout, "debian (arm64) current is now 12.6\n");
    const listed = await cli(["images", "list", "debian"], env);
    assert.deepEqual(
      listed.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(/\s+/).slice(0, 4).join(" ")),
      ["* debian x86_64 12.5", " debian arm64 12.5", "* debian arm64 12.6"],
    );
    // The x86_64 line has no 12.6: --arch is not guessed.
    const wrongLine = await cli(["images", "use", "debian", "12.6"], env);
    assert.equal(wrongLine.code, 1);
    assert.match(wrongLine.stderr, /debian version 12\.6/);
    const removed = await cli(["images", "remove", "debian", "12.5", "--arch", "arm64"], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.ok(!existsSync(join(stateDir, "images", "debian@arm64", "12.5")));
    assert.ok(existsSync(join(stateDir, "images", "debian", "12.5")), "the x86_64 12.5 stays");
    const bad = await add("1", "--arch", "riscv64");
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /x86_64, arm64, arm32/);
  });
});

describe("against a running server, found from --config", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "cli-server-"));
  let server: ApiServer | undefined;
  let port: number;
  let token: string;
  const configFile = join(stateDir, "config.yaml");

  before(async () => {
    server = await startApiServer(stateDir);
    port = server.port;
    // What an operator's config says: the server's address and the port HTTP listens on.
    writeFileSync(
      configFile,
      `stateDir: ${stateDir}\nserverAddress: 127.0.0.1\nhttp: { port: ${port} }\ndhcp: { mode: off }\ntftp: { enabled: false }\n`,
    );
    token = (
      JSON.parse((await cli(["token", "create", "--state-dir", stateDir, "--json"])).stdout) as { token: string }
    ).token;
  });

  after(async () => {
    await server?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("nodes add/list/show/events --json, with the server taken from --config or CENTRA_PXE_CONFIG", async () => {
    const auth = { CENTRA_PXE_TOKEN: token };
    const added = await cli(
      [
        "nodes",
        "add",
        "52:54:00:00:10:01",
        "--profile",
        "worker",
        "--hostname",
        "w1",
        "--config",
        configFile,
        "--json",
      ],
      auth,
    );
    assert.equal(added.code, 0, added.stderr);
    const node = JSON.parse(added.stdout) as { id: string; state: string };
    assert.equal(node.state, "ready");

    const listed = await cli(["nodes", "list", "--json"], { ...auth, CENTRA_PXE_CONFIG: configFile });
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { id: string }[]).map((n) => n.id),
      [node.id],
    );

    const shown = await cli(["nodes", "show", "w1", "-c", configFile, "--json"], auth);
    assert.equal(shown.code, 0, shown.stderr);
    const detail = JSON.parse(shown.stdout) as { id: string; events: { kind: string }[] };
    assert.equal(detail.id, node.id);
    assert.ok(detail.events.length > 0);

    const events = await cli(["nodes", "events", node.id, "-c", configFile, "--json"], auth);
    assert.equal(events.code, 0, events.stderr);
    const lines = events.stdout.trim().split("\n");
    assert.ok(lines.length > 0);
    for (const line of lines) assert.equal((JSON.parse(line) as { nodeId: string }).nodeId, node.id);

    // --url wins over the config, CENTRA_PXE_URL too: both point at a closed port here, so both fail.
    const closed = `http://127.0.0.1:${await closedPort()}`;
    const wrongUrl = await cli(["nodes", "list", "-c", configFile, "--url", closed], auth);
    assert.equal(wrongUrl.code, 1);
    assert.match(wrongUrl.stderr, new RegExp(`cannot reach the server at ${closed} .*came from --url`));
    const wrongEnv = await cli(["nodes", "list", "-c", configFile], { ...auth, CENTRA_PXE_URL: closed });
    assert.equal(wrongEnv.code, 1);
    assert.match(wrongEnv.stderr, /came from CENTRA_PXE_URL/);
  });

  test("doctor --json finds the server from --config, and fails in JSON too", async () => {
    const ok = await cli(["doctor", "--config", configFile, "--json"]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    const report = JSON.parse(ok.stdout) as { ok: boolean; checks: { name: string; ok: boolean }[] };
    assert.equal(report.ok, true);
    assert.deepEqual(
      report.checks.map((c) => c.name),
      ["http /health", "http boot script"],
    );
    const down = await cli([
      "doctor",
      "--config",
      configFile,
      "--url",
      `http://127.0.0.1:${await closedPort()}`,
      "--json",
    ]);
    assert.equal(down.code, 1);
    const failed = JSON.parse(down.stdout) as { ok: boolean; checks: { ok: boolean }[] };
    assert.equal(failed.ok, false);
    assert.ok(failed.checks.every((c) => !c.ok));
  });
});

describe("server URLs", () => {
  test("a bare address is 'not a URL'; a port Node's fetch refuses is said to be that, not 'not running'", async () => {
    const bare = await cli(["nodes", "list", "--url", "10.0.100.10", "--token", "x"]);
    assert.equal(bare.code, 1);
    assert.equal(bare.stderr, 'centra-pxe: --url: not a URL: "10.0.100.10" (expected http://HOST[:PORT])\n');
    const scheme = await cli(["nodes", "list", "--token", "x"], { CENTRA_PXE_URL: "localhost:8080" });
    assert.match(scheme.stderr, /CENTRA_PXE_URL: not a URL: "localhost:8080"/);

    const badPort = await cli(["nodes", "list", "--url", "http://127.0.0.1:10080", "--token", "x"]);
    assert.equal(badPort.code, 1);
    assert.match(badPort.stderr, /Node's fetch refuses port 10080 \(a "bad port" of the Fetch standard/);
    assert.doesNotMatch(badPort.stderr, /running/);
  });
});

describe("exit statuses", () => {
  test("0 ok, 1 failed, 2 usage; --help documents them and the environment", async () => {
    const help = await cli(["--help"]);
    assert.equal(help.code, 0);
    for (const name of ["CENTRA_PXE_CONFIG", "CENTRA_PXE_STATE_DIR", "CENTRA_PXE_URL", "CENTRA_PXE_TOKEN"])
      assert.match(help.stdout, new RegExp(`^  ${name} `, "m"));
    assert.match(help.stdout, /^Exit status:\n {2}0 +success\n {2}1 +the command failed.*\n {2}2 +usage error/m);
    assert.equal((await cli(["--version"])).code, 0);
    assert.equal((await cli(["nodes", "list", "--help"])).code, 0);

    for (const usage of [["nosuch"], ["nodes", "list", "--bogus"], ["images", "use", "only-one-arg"], ["nodes"]]) {
      const run = await cli(usage);
      assert.equal(run.code, 2, `${usage.join(" ")}: ${run.stderr}`);
    }
    assert.equal((await cli(["completion", "fish"])).code, 2);
    assert.equal((await cli(["leases", "--state-dir", join(root, "nowhere")])).code, 1);
  });
});

describe("a read command on a database this user cannot write", () => {
  test("as nobody: reads answer (read-only open), writes say which file and what to do, the file is unchanged", async (t) => {
    if (!findBinary("runuser") || process.getuid?.() !== 0) {
      if (isCI) throw new Error("needs root and runuser under CI");
      t.skip("needs root and runuser");
      return;
    }
    // Another user must be able to run the CLI from this checkout (not so under a 0700 home directory).
    if (!checkoutReadableBy("nobody")) return t.skip(`nobody cannot read ${repo}`);
    const stateDir = join(root, "readonly");
    assert.equal((await cli(["init", "--state-dir", stateDir, "--bootloaders", bootloaders])).code, 0);
    assert.equal((await cli(["token", "create", "--name", "ro", "--state-dir", stateDir])).code, 0);
    const db = join(stateDir, "centra-pxe.db");
    chmodSync(db, 0o444);
    const digest = () => createHash("sha256").update(readFileSync(db)).digest("hex");
    const before = digest();

    const list = await cli(["token", "list", "--state-dir", stateDir, "--json"], {}, "nobody");
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { name: string }[]).map((t) => t.name),
      ["ro"],
    );
    for (const read of [["leases"], ["images", "list"]]) {
      const run = await cli([...read, "--state-dir", stateDir, "--json"], {}, "nobody");
      assert.equal(run.code, 0, `${read.join(" ")}: ${run.stderr}`);
      assert.deepEqual(JSON.parse(run.stdout), []);
    }

    const write = await cli(["token", "create", "--state-dir", stateDir], {}, "nobody");
    assert.equal(write.code, 1);
    assert.equal(write.stderr, `centra-pxe: cannot write ${db}: permission denied; run as the service user or root\n`);
    assert.equal(digest(), before);
    assert.equal(existsSync(`${db}-wal`), false);
  });
});

describe("a state directory on a read-only mount", () => {
  test("writes say the file system is read-only, reads still answer", async (t) => {
    if (!findBinary("unshare") || process.getuid?.() !== 0) {
      if (isCI) throw new Error("needs root and unshare under CI");
      t.skip("needs root and unshare");
      return;
    }
    const stateDir = join(root, "rofs");
    assert.equal((await cli(["init", "--state-dir", stateDir, "--bootloaders", bootloaders])).code, 0);
    // A private mount namespace: the read-only bind mount is seen by this one command only.
    const inReadOnlyMount = (args: string[]) =>
      new Promise<Run>((resolve) =>
        execFile(
          "unshare",
          [
            "-m",
            "sh",
            "-c",
            `mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"`,
            stateDir,
            process.execPath,
            ...cliArgs(args),
          ],
          { cwd: repo, env: cleanEnv(), timeout: 60_000 },
          (error, stdout, stderr) =>
            resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        ),
      );
    const write = await inReadOnlyMount(["token", "create", "--state-dir", stateDir]);
    assert.equal(write.code, 1);
    assert.equal(
      write.stderr,
      `centra-pxe: cannot write ${stateDir}/centra-pxe.db: the file system is mounted read-only; remount it read-write or use another --state-dir\n`,
    );
    const read = await inReadOnlyMount(["token", "list", "--state-dir", stateDir, "--json"]);
    assert.equal(read.code, 0, read.stderr);
    assert.deepEqual(JSON.parse(read.stdout), []);
    const image = await inReadOnlyMount(["images", "use", "nixos", "1", "--state-dir", stateDir]);
    assert.equal(image.code, 1);
    assert.match(image.stderr, /cannot write .*centra-pxe\.db: the file system is mounted read-only/);
  });
});

describe("completion and man page, generated from the commands", () => {
  const paths = walkCommands(buildProgram())
    .filter((n) => n.path.length > 0)
    .map((n) => n.path);

  test("bash completion names every command and completes subcommands and flags", async (t) => {
    const run = await cli(["completion", "bash"]);
    assert.equal(run.code, 0, run.stderr);
    for (const path of paths) assert.ok(run.stdout.includes(`" ${path.join(" ")}"`), `bash: ${path.join(" ")}`);
    if (!findBinary("bash")) return t.skip("no bash");
    const script = join(root, "completion.bash");
    writeFileSync(script, run.stdout);
    const complete = (words: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile(
          "bash",
          [
            "-c",
            `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _centra_pxe; echo "\${COMPREPLY[*]}"`,
          ],
          (error, stdout) => (error ? reject(error) : resolve(stdout.trim())),
        ),
      );
    assert.equal(await complete(["centra-pxe", "nodes", "li"]), "list");
    assert.equal(await complete(["centra-pxe", "images", "list", "--st"]), "--state-dir");
    assert.equal(await complete(["centra-pxe", "ver"]), "version");
  });

  test("zsh completion names every command and is valid zsh", async (t) => {
    const run = await cli(["completion", "zsh"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^#compdef centra-pxe\n/);
    for (const path of paths) assert.ok(run.stdout.includes(`" ${path.join(" ")}")`), `zsh: ${path.join(" ")}`);
    if (!findBinary("zsh")) {
      if (isCI) throw new Error("zsh missing (scripts/bootstrap installs it)");
      return t.skip("no zsh");
    }
    const script = join(root, "_centra-pxe");
    writeFileSync(script, run.stdout);
    await new Promise<void>((resolve, reject) =>
      execFile("zsh", ["-n", script], (error, _stdout, stderr) => (error ? reject(new Error(stderr)) : resolve())),
    );
  });

  test("the man page has a section for every command and the exit statuses", async () => {
    const run = await cli(["man"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^\.TH CENTRA\\-PXE 1 /);
    for (const path of paths) {
      const heading = `.SS "${["centra-pxe", ...path].join(" ").replace(/-/g, "\\-")} `;
      assert.ok(run.stdout.includes(heading), `man: ${path.join(" ")}`);
    }
    assert.match(run.stdout, /^\.SH EXIT STATUS$/m);
    assert.match(run.stdout, /^\.B CENTRA_PXE_STATE_DIR$/m);
  });
});
