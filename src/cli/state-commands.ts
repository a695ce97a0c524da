import { type Command, Option } from "commander";
import { existsSync } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { DEFAULT_BOOTLOADER_SOURCE, readBootloaders, SIGNED_LOADERS, writeBootloaders } from "../files/bootloaders.js";
import {
  DEFAULT_IMAGE_ARCH,
  IMAGE_ARCHES,
  type ImageArch,
  bootloaderDir,
  databaseFile,
  imagesDir,
} from "../files/state-dir.js";
import { addImage, describeBuild, listImages, removeImage, useImage } from "../images/images.js";
import { openSqliteStore } from "../store/sqlite-store.js";
import {
  type StateOptions,
  explainFsError,
  explainStoreError,
  jsonOption,
  printJson,
  resolveStateDir,
  stateOptions,
  withStateStore,
} from "./common.js";
import { auditedLocally } from "./local-audit.js";

/**
 * Make (or complete) the state directory, all or nothing: the bootloaders are read and checked
 * before anything is created, and whatever this run created is removed again if a later step
 * fails, so a failed `init` leaves no half-made state directory for the next command to trust.
 */
async function initStateDir(stateDir: string, bootloaderSource: string, foreignRoots: readonly string[] = []) {
  // Debian's signed Secure Boot chain comes from its packages' paths with the default source; a
  // `--bootloaders DIR` means everything from DIR, the signed loaders under their installed names.
  // Another architecture's signed loaders (shimaa64 on an x86 server) cannot be installed with apt
  // on this host, only unpacked from their .debs: `--foreign-root DIR` is where, at the same paths.
  const signed = SIGNED_LOADERS.map((l) => {
    const candidates = [
      bootloaderSource === DEFAULT_BOOTLOADER_SOURCE ? l.from : join(bootloaderSource, l.name),
      ...foreignRoots.map((root) => join(root, l.from)),
    ];
    return { name: l.name, from: candidates.find((path) => existsSync(path)) ?? candidates[0]! };
  });
  const bootloaders = await readBootloaders(bootloaderSource, signed);
  const undo: string[] = [];
  const exists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );
  try {
    const firstMade = await mkdir(stateDir, { recursive: true });
    if (firstMade !== undefined) undo.push(firstMade);
    for (const dir of [bootloaderDir(stateDir), imagesDir(stateDir)]) {
      if (firstMade === undefined && !(await exists(dir))) undo.push(dir);
      await mkdir(dir, { recursive: true });
    }
    const file = databaseFile(stateDir);
    if (firstMade === undefined && !(await exists(file))) undo.push(file, `${file}-wal`, `${file}-shm`);
    try {
      await openSqliteStore(file).close();
    } catch (error) {
      throw explainStoreError(error, file);
    }
    return await writeBootloaders(bootloaders, bootloaderDir(stateDir));
  } catch (error) {
    for (const path of undo.reverse()) await rm(path, { recursive: true, force: true });
    throw explainFsError(error);
  }
}

/** `init` and `images …`: the state directory, its bootloaders and its images. */
export function registerStateCommands(program: Command): void {
  jsonOption(
    stateOptions(
      program
        .command("init")
        .description(
          "create the state directory layout and install the iPXE bootloaders (never downloads); all or nothing",
        ),
    )
      .option("--bootloaders <dir>", "where to take the bootloaders from", DEFAULT_BOOTLOADER_SOURCE)
      .option(
        "--foreign-root <dir>",
        "also take Debian's signed Secure Boot loaders from this unpacked root of another architecture's packages (e.g. shim-signed:arm64 and grub-efi-arm64-signed, `apt-get download` + `dpkg-deb -x`); repeatable",
        (value: string, previous: string[]) => [...previous, value],
        [] as string[],
      ),
  ).action(async (options: StateOptions & { bootloaders: string; foreignRoot: string[]; json?: boolean }) => {
    const stateDir = resolveStateDir(options);
    const report = await initStateDir(stateDir, options.bootloaders, options.foreignRoot);
    if (options.json) {
      printJson({ stateDir, ...report });
      return;
    }
    const line = (label: string, names: string[]) =>
      names.length && process.stdout.write(`${label}: ${names.join(", ")}\n`);
    process.stdout.write(`state directory ${stateDir} ready\n`);
    line("installed", report.installed);
    line("unchanged", report.unchanged);
    line(`not in ${options.bootloaders} (optional)`, report.missing);
  });

  const images = program.command("images").description("netboot images: add, list, use (switch current), remove");
  /** Which build line of an image a command works on: machines of that `${buildarch}` boot it. */
  const archOption = () =>
    new Option("--arch <arch>", "the architecture of the build (ARM servers boot the arm64 one)")
      .choices(IMAGE_ARCHES)
      .default(DEFAULT_IMAGE_ARCH);

  images
    .command("add <name>")
    .description("copy a kernel and initrd in as a new version of an image")
    .requiredOption("--kernel <file>", "the kernel (bzImage)")
    .requiredOption("--initrd <file>", "the initial ramdisk")
    .option("--version <version>", "version name (default: a UTC timestamp)")
    .option("--cmdline <args>", "kernel arguments the image itself needs", "")
    .addOption(archOption())
    .option("-c, --config <file>", "config file (for stateDir; default: $CENTRA_PXE_CONFIG, ./centra-pxe.yaml, …)")
    .option("--state-dir <dir>", "state directory (default: $CENTRA_PXE_STATE_DIR, else the config's stateDir)")
    .option("--json", "print the added version as JSON")
    .action(
      async (
        name: string,
        options: {
          kernel: string;
          initrd: string;
          version?: string;
          cmdline: string;
          arch: ImageArch;
          config?: string;
          stateDir?: string;
          json?: boolean;
        },
      ) => {
        await withStateStore(options, "write", async (store, stateDir) => {
          const bar = process.stderr.isTTY ? progressBar(`adding ${name}`) : undefined;
          const record = await auditedLocally(
            store,
            {
              action: "images add",
              target: name,
              summary: { version: options.version, cmdline: options.cmdline, arch: options.arch },
            },
            () =>
              addImage({
                stateDir,
                store,
                name,
                arch: options.arch,
                files: { kernel: options.kernel, initrd: options.initrd },
                version: options.version,
                cmdline: options.cmdline,
                onProgress: bar,
              }),
          );
          if (bar) process.stderr.write("\n");
          if (options.json) {
            printJson(record);
            return;
          }
          process.stdout.write(`added ${describeBuild(record.name, record.arch)} ${record.version}\n`);
          for (const [role, f] of Object.entries(record.files))
            process.stdout.write(`  ${role.padEnd(6)} ${f.size} bytes sha256 ${f.sha256}\n`);
        });
      },
    );

  jsonOption(stateOptions(images.command("list [name]").description("list image versions; * marks current"))).action(
    async (name: string | undefined, options: StateOptions & { json?: boolean }) => {
      await withStateStore(options, "read", async (store, stateDir) => {
        const list = await listImages(stateDir, store, name);
        if (options.json) {
          printJson(list);
          return;
        }
        if (list.length === 0)
          process.stdout.write("no images; add one with `centra-pxe images add NAME --kernel F --initrd F`\n");
        // `current` is per architecture: an image's arm64 build has its own star.
        for (const i of list) {
          const size = Object.values(i.files).reduce((a, f) => a + f.size, 0);
          process.stdout.write(
            `${i.current ? "*" : " "} ${i.name.padEnd(16)} ${i.arch.padEnd(7)} ${i.version.padEnd(20)} ${formatBytes(size).padStart(9)}  ${i.addedAt}\n`,
          );
        }
      });
    },
  );

  stateOptions(
    images
      .command("use <name> <version>")
      .description("switch an image's current version (the rollback), of one architecture's build")
      .addOption(archOption()),
  ).action(async (name: string, version: string, options: StateOptions & { arch: ImageArch }) => {
    await withStateStore(options, "write", async (store, stateDir) => {
      await auditedLocally(
        store,
        { action: "images use", target: name, summary: { version, arch: options.arch } },
        () => useImage(stateDir, name, version, options.arch),
      );
      process.stdout.write(`${describeBuild(name, options.arch)} current is now ${version}\n`);
    });
  });

  stateOptions(
    images
      .command("remove <name> <version>")
      .description("remove an image version (not the current one) of one architecture's build")
      .addOption(archOption()),
  ).action(async (name: string, version: string, options: StateOptions & { arch: ImageArch }) => {
    await withStateStore(options, "write", async (store, stateDir) => {
      await auditedLocally(
        store,
        { action: "images remove", target: name, summary: { version, arch: options.arch } },
        () => removeImage(stateDir, store, name, version, options.arch),
      );
      process.stdout.write(`removed ${describeBuild(name, options.arch)} ${version}\n`);
    });
  });
}

function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** A one-line progress bar on a terminal, redrawn at most ten times a second. */
function progressBar(label: string): (copied: number, total: number) => void {
  let last = 0;
  return (copied, total) => {
    const now = Date.now();
    if (now - last < 100 && copied < total) return;
    last = now;
    const fraction = total ? copied / total : 1;
    const width = 30;
    const filled = Math.round(fraction * width);
    process.stderr.write(
      `\r${label} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(copied)}/${formatBytes(total)}`,
    );
  };
}
