/**
 * Progress of an iPXE build read from make's own output. iPXE's Makefile prints one tagged line per
 * step (`  [DEPS] core/main.c`, `  [BUILD] bin/main.o`, `  [AR] bin/blib.a`, `  [LD] …`,
 * `  [FINISH] bin/undionly.kpxe`): make first computes the dependencies of every source for every
 * bin directory, then compiles. The [DEPS] count is not the [BUILD] count to come (a full x86 BIOS
 * + UEFI build lists 3686 dependencies and compiles 2072 objects), so the line counts what is done
 * and names the file, with no made-up percentage. Pure: lines in, state out; the CLI draws it, the
 * JSON mode ignores it.
 */
export interface MakeProgress {
  /** Sources make computed dependencies for ([DEPS] lines seen). */
  planned: number;
  /** Objects compiled so far ([BUILD] lines). */
  compiled: number;
  /** Bootloaders finished ([FINISH] lines). */
  finished: string[];
  /** The phase of the latest line. */
  phase: "starting" | "dependencies" | "compiling" | "linking";
  /** The file of the latest tagged line. */
  current: string;
}

export function startProgress(): MakeProgress {
  return { planned: 0, compiled: 0, finished: [], phase: "starting", current: "" };
}

const TAGGED = /^\s*\[([A-Z0-9_]+)\](?:\s+(\S+))?/;

/** The progress after one more line of make's output; untagged lines (warnings) change nothing. */
export function stepProgress(progress: MakeProgress, line: string): MakeProgress {
  const match = TAGGED.exec(line);
  if (!match) return progress;
  const tag = match[1]!;
  const file = match[2] ?? progress.current;
  switch (tag) {
    case "DEPS":
      return { ...progress, planned: progress.planned + 1, phase: "dependencies", current: file };
    case "BUILD":
      return { ...progress, compiled: progress.compiled + 1, phase: "compiling", current: file };
    case "FINISH":
      return { ...progress, finished: [...progress.finished, file], phase: "linking", current: file };
    case "HOSTCC":
    case "PARSEROM":
    case "VERSION":
      return { ...progress, current: file };
    default:
      // AR, LD, BIN, ZINFO, ZBIN, OBJCOPY, EFIBIN…: the steps after compiling.
      return { ...progress, phase: "linking", current: file };
  }
}

/** One compact line: `ipxe.efi: compiling, 870 objects done: bin/pem_test.o`. */
export function formatProgress(label: string, progress: MakeProgress, width = 100): string {
  const counts =
    progress.phase === "dependencies"
      ? `, ${progress.planned} sources`
      : progress.phase === "compiling"
        ? `, ${progress.compiled} objects done`
        : "";
  const text = `${label}: ${progress.phase}${counts}: ${progress.current}`;
  return text.length > width ? `${text.slice(0, width - 1)}…` : text;
}
