import { normalizeMac } from "../config/primitives.js";

/**
 * The per-MAC choices of the seed's `boot.ipxe` and `mac-mappings.txt`. In iPXE a line is commands
 * joined by `&&` and `||`; the seed writes one machine per line:
 *   iseq ${mac} 52:54:00:12:34:56 && set profile control-plane && set hostname control-plane-01 && goto boot ||
 * Read as commands (split on the operators, then on blanks), not as a pattern over the line, so the
 * order of the `set`s and extra commands on the line do not matter.
 */

export interface MacChoice {
  mac: string;
  profile?: string;
  hostname?: string;
  file: string;
  line: number;
}

export interface ScriptReading {
  choices: MacChoice[];
  /** Profile names offered by the script's menu (`item <name> …`), in order. */
  menuProfiles: string[];
  /** The menu's `choose --timeout` (ms) and `--default`, with the line. */
  menuChoice?: { timeoutMs?: number; defaultItem?: string; file: string; line: number };
  /** Lines that compare `${mac}` but could not be read, with why. */
  problems: { file: string; line: number; reason: string }[];
}

/** iPXE's settings that hold the boot MAC: `${mac}`, `${net0/mac}`, `${netX/mac}` (iPXE docs, "settings"). */
const MAC_SETTING = /^\$\{(?:net[0-9X]+\/)?mac(?::hex|:hexhyp|:hexraw)?\}$/;

/** Menu items that are not profiles (the seed's and ours). */
const NOT_PROFILES = new Set(["localdisk", "local", "shell", "reboot", "exit", "retry", "config"]);

export function readBootScript(text: string, file = "boot.ipxe"): ScriptReading {
  const reading: ScriptReading = { choices: [], menuProfiles: [], problems: [] };
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    const source = raw.trim();
    if (source === "" || source.startsWith("#")) return;
    const commands = source
      .split(/\s*(?:&&|\|\|)\s*/)
      .map((c) => c.split(/\s+/).filter(Boolean))
      .filter((c) => c.length > 0);
    const first = commands[0]!;
    if (first[0] === "item" && first.length >= 2) {
      const name = first.find((w, i) => i > 0 && !w.startsWith("--"));
      if (name !== undefined && !NOT_PROFILES.has(name) && !reading.menuProfiles.includes(name))
        reading.menuProfiles.push(name);
      return;
    }
    if (first[0] === "choose") {
      const option = (name: string) => {
        const i = first.indexOf(name);
        return i > 0 ? first[i + 1] : undefined;
      };
      const timeout = Number(option("--timeout") ?? Number.NaN);
      const defaultItem = option("--default");
      reading.menuChoice = {
        ...(Number.isInteger(timeout) && timeout > 0 ? { timeoutMs: timeout } : {}),
        ...(defaultItem !== undefined ? { defaultItem } : {}),
        file,
        line,
      };
      return;
    }
    if (first[0] !== "iseq" || first.length < 3) return;
    const [left, right] = [first[1]!, first[2]!];
    const macText = MAC_SETTING.test(left) ? right : MAC_SETTING.test(right) ? left : undefined;
    if (macText === undefined) {
      // A profile chosen by ${platform}, ${uuid}, …: a selector in our config, written by hand.
      if (commands.some((c) => c[0] === "set" && c[1] === "profile"))
        reading.problems.push({
          file,
          line,
          reason: "a profile chosen by something else than ${mac}: write a selector",
        });
      return;
    }
    const mac = normalizeMac(macText);
    if (mac === undefined) {
      reading.problems.push({ file, line, reason: `${JSON.stringify(macText)} is not a MAC address` });
      return;
    }
    const choice: MacChoice = { mac, file, line };
    for (const command of commands.slice(1)) {
      if (command[0] !== "set" || command.length < 3) continue;
      const value = command.slice(2).join(" ");
      if (command[1] === "profile") choice.profile = value;
      if (command[1] === "hostname") choice.hostname = value;
    }
    if (choice.profile === undefined && choice.hostname === undefined) {
      reading.problems.push({ file, line, reason: "compares ${mac} but sets neither profile nor hostname" });
      return;
    }
    reading.choices.push(choice);
  });
  return reading;
}

/** `mac-mappings.txt`: `MAC PROFILE [HOSTNAME]` per line, `#` comments (the seed's documentation file). */
export function readMacMappings(text: string, file = "mac-mappings.txt"): ScriptReading {
  const reading: ScriptReading = { choices: [], menuProfiles: [], problems: [] };
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    const words = raw.replace(/#.*/, "").trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) return;
    const mac = normalizeMac(words[0]!);
    if (mac === undefined || words.length < 2 || words.length > 3) {
      reading.problems.push({ file, line, reason: "expected MAC PROFILE [HOSTNAME]" });
      return;
    }
    reading.choices.push({ mac, profile: words[1]!, ...(words[2] ? { hostname: words[2] } : {}), file, line });
  });
  return reading;
}
