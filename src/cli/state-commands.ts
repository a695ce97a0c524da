import type { Command } from "commander";
import { mkdir } from "node:fs/promises";
import { DEFAULT_BOOTLOADER_SOURCE, installBootloaders } from "../files/bootloaders.js";
import { bootloaderDir, databaseFile, imagesDir } from "../files/state-dir.js";
import { addImage, listImages, removeImage, useImage } from "../images/images.js";
import { openSqliteStore } from "../store/sqlite-store.js";
import { resolveConfig } from "./config-commands.js";

/** `init` and `images …`: the state directory, its bootloaders and its images. */
export function registerStateCommands(program: Command): void {
  program
    .command("init")
    .description("create the state directory layout and install the iPXE bootloaders (never downloads)")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory (default: the config's stateDir)")
    .option("--bootloaders <dir>", "where to take the bootloaders from", DEFAULT_BOOTLOADER_SOURCE)
    .action(async (options: { config?: string; stateDir?: string; bootloaders: string }) => {
      const stateDir = options.stateDir ?? resolveConfig(options.config).config.stateDir;
      for (const dir of [bootloaderDir(stateDir), imagesDir(stateDir)]) await mkdir(dir, { recursive: true });
      const store = openSqliteStore(databaseFile(stateDir));
      await store.close();
      const report = await installBootloaders(options.bootloaders, bootloaderDir(stateDir));
      const line = (label: string, names: string[]) =>
        names.length && process.stdout.write(`${label}: ${names.join(", ")}\n`);
      process.stdout.write(`state directory ${stateDir} ready\n`);
      line("installed", report.installed);
      line("unchanged", report.unchanged);
      line(`not in ${options.bootloaders} (optional)`, report.missing);
    });

  const images = program.command("images").description("netboot images: add, list, use (switch current), remove");
  const withStore = async <T>(
    config: string | undefined,
    stateDirOption: string | undefined,
    body: (stateDir: string, store: ReturnType<typeof openSqliteStore>) => Promise<T>,
  ) => {
    const stateDir = stateDirOption ?? resolveConfig(config).config.stateDir;
    await mkdir(stateDir, { recursive: true });
    const store = openSqliteStore(databaseFile(stateDir));
    try {
      return await body(stateDir, store);
    } finally {
      await store.close();
    }
  };

  images
    .command("add <name>")
    .description("copy a kernel and initrd in as a new version of an image")
    .requiredOption("--kernel <file>", "the kernel (bzImage)")
    .requiredOption("--initrd <file>", "the initial ramdisk")
    .option("--version <version>", "version name (default: a UTC timestamp)")
    .option("--cmdline <args>", "kernel arguments the image itself needs", "")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory")
    .action(
      async (
        name: string,
        options: {
          kernel: string;
          initrd: string;
          version?: string;
          cmdline: string;
          config?: string;
          stateDir?: string;
        },
      ) => {
        await withStore(options.config, options.stateDir, async (stateDir, store) => {
          const bar = process.stderr.isTTY ? progressBar(`adding ${name}`) : undefined;
          const record = await addImage({
            stateDir,
            store,
            name,
            files: { kernel: options.kernel, initrd: options.initrd },
            version: options.version,
            cmdline: options.cmdline,
            onProgress: bar,
          });
          if (bar) process.stderr.write("\n");
          process.stdout.write(`added ${record.name} ${record.version}\n`);
          for (const [role, f] of Object.entries(record.files))
            process.stdout.write(`  ${role.padEnd(6)} ${f.size} bytes sha256 ${f.sha256}\n`);
        });
      },
    );

  images
    .command("list [name]")
    .description("list image versions; * marks current")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory")
    .option("--json", "print JSON")
    .action(async (name: string | undefined, options: { config?: string; stateDir?: string; json?: boolean }) => {
      await withStore(options.config, options.stateDir, async (stateDir, store) => {
        const list = await listImages(stateDir, store, name);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
          return;
        }
        if (list.length === 0)
          process.stdout.write("no images; add one with `centra-pxe images add NAME --kernel F --initrd F`\n");
        for (const i of list) {
          const size = Object.values(i.files).reduce((a, f) => a + f.size, 0);
          process.stdout.write(
            `${i.current ? "*" : " "} ${i.name.padEnd(16)} ${i.version.padEnd(20)} ${formatBytes(size).padStart(9)}  ${i.addedAt}\n`,
          );
        }
      });
    });

  images
    .command("use <name> <version>")
    .description("switch an image's current version (the rollback)")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory")
    .action(async (name: string, version: string, options: { config?: string; stateDir?: string }) => {
      await withStore(options.config, options.stateDir, async (stateDir) => {
        await useImage(stateDir, name, version);
        process.stdout.write(`${name} current is now ${version}\n`);
      });
    });

  images
    .command("remove <name> <version>")
    .description("remove an image version (not the current one)")
    .option("-c, --config <file>", "config file (for stateDir)")
    .option("--state-dir <dir>", "state directory")
    .action(async (name: string, version: string, options: { config?: string; stateDir?: string }) => {
      await withStore(options.config, options.stateDir, async (stateDir, store) => {
        await removeImage(stateDir, store, name, version);
        process.stdout.write(`removed ${name} ${version}\n`);
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
