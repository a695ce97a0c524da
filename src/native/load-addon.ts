import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const loaded = new Map<string, unknown>();

/**
 * One of our native addons (native/*.c, built by `npm run build:native` into build/Release/).
 * `neededBy` names the part that cannot run without it, for the error.
 */
export function loadAddon<T>(name: string, neededBy: string): T {
  const cached = loaded.get(name);
  if (cached) return cached as T;
  // Same relative path from src/native (tsx) and dist/native (built): the repo root's build/.
  const path = fileURLToPath(new URL(`../../build/Release/${name}.node`, import.meta.url));
  let addon: T;
  try {
    addon = createRequire(import.meta.url)(path) as T;
  } catch (error) {
    throw new Error(`${neededBy} needs its native addon at ${path}; build it with \`npm run build:native\``, {
      cause: error,
    });
  }
  loaded.set(name, addon);
  return addon;
}
