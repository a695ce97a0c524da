import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { repo } from "./daemon.js";

/**
 * Whether `user` can read this checkout's sources, so a test can run the CLI as that user. Not so
 * when the checkout sits under a 0700 home directory; such a test then skips with the reason.
 */
export function checkoutReadableBy(user: string): boolean {
  try {
    execFileSync("runuser", ["-u", user, "--", "test", "-r", join(repo, "src/cli/main.ts")], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
