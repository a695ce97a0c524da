import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test, type TestContext } from "node:test";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { repo } from "../support/daemon.js";
import { buildDashboardInto, type DashboardServer, startDashboardServer } from "../support/dashboard-server.js";
import { isCI } from "../support/netns.js";

/**
 * The dashboard in Debian's Chromium (playwright-core drives /usr/bin/chromium; nothing is
 * downloaded), against the API and the bundle composed as `serve` composes them. The provisioning
 * flow's machine side (the install script, the callback) is played with plain HTTP by the test.
 * Screenshots go to test-artifacts/dashboard/ (or $CENTRA_PXE_ARTIFACTS), kept for CI to upload.
 */

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = process.env.CENTRA_PXE_ARTIFACTS ?? join(repo, "test-artifacts/dashboard");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const MAC = "52:54:00:d0:00:01";
let dir: string;
let server: DashboardServer;
let browser: Browser | undefined;
/** Messages Chromium printed about the Content-Security-Policy: any is a failure. */
const cspViolations: string[] = [];

function haveChromium(t: TestContext): boolean {
  if (existsSync(CHROMIUM)) return true;
  const why = `no Chromium at ${CHROMIUM} (scripts/bootstrap installs Debian's chromium)`;
  if (isCI) throw new Error(`${why}: required under CI`);
  t.skip(why);
  return false;
}

async function api(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await response.json()) as Record<string, unknown>;
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/**
 * What iPXE and the installer do: the entry script, the machine script (it carries the token), the
 * kernel and initrd it names, then the callback.
 */
async function installAndCallBack(mac: string): Promise<void> {
  assert.equal((await fetch(`${server.url}/boot/ipxe/boot.ipxe`)).status, 200);
  const script = await (
    await fetch(
      `${server.url}/boot/ipxe/machine.ipxe?mac=${mac.replaceAll(":", "-")}&buildarch=x86_64&platform=pcbios&uuid=&serial=`,
    )
  ).text();
  const token = /centra\.token=([^\s]+)/.exec(script)?.[1];
  assert.ok(token, `the install script carries a callback token:\n${script}`);
  for (const url of script.match(/http:\/\/\S+\/boot\/images\/\S+\/(kernel|initrd)/g) ?? []) {
    const file = await fetch(url.replace(/^http:\/\/[^/]+/, server.url));
    assert.equal(file.status, 200, url);
    await file.arrayBuffer();
  }
  const response = await fetch(`${server.url}/api/v1/nodes/callback`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ mac, token }).toString(),
  });
  assert.equal(response.status, 200, await response.text());
}

async function newPage(context?: BrowserContext): Promise<Page> {
  const page = await (context ?? (await browser!.newContext())).newPage();
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  return page;
}

async function signIn(page: Page, token = server.token): Promise<void> {
  await page.goto(`${server.url}/`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1, name: "Fleet overview" }).waitFor();
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/** axe-core run inside the page (WCAG 2 A/AA rules); serious and critical findings fail. */
async function checkAccessibility(page: Page, what: string): Promise<void> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(context: Document, options: unknown): Promise<AxeResult> } })
      .axe;
    const result = await axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "best-practice"] },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
  });
  const bad = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `${what}: accessibility violations\n${JSON.stringify(bad, null, 2)}`);
}
interface AxeResult {
  violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "dashboard-"));
  const uiDir = join(dir, "ui");
  buildDashboardInto(uiDir);
  server = await startDashboardServer({ stateDir: join(dir, "state"), uiDir });
  await api("POST", "/nodes", {
    mac: MAC,
    profile: "worker",
    hostname: "worker-ui-01",
    labels: { rack: "a1" },
  });
  await api("POST", "/nodes", { mac: "52:54:00:d0:00:02", profile: "worker", hostname: "worker-ui-02" });
  mkdirSync(artifacts, { recursive: true });
  process.stdout.write(`dashboard screenshots: ${artifacts}\n`);
  if (existsSync(CHROMIUM))
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("sign in with a token: a wrong one is refused, the right one shows the overview; the token stays out of URLs", async (t) => {
  if (!haveChromium(t)) return;
  const page = await newPage();
  const response = await page.goto(`${server.url}/`);
  assert.equal(new URL(page.url()).pathname, "/ui/", "/ redirects to the dashboard");
  const csp = response!.headers()["content-security-policy"] ?? "";
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /default-src 'none'/);
  await checkAccessibility(page, "sign-in page");
  await screenshot(page, "sign-in");

  await page.getByLabel("API token").fill("cpx_nope_notatoken");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor();
  assert.match((await page.getByRole("alert").textContent()) ?? "", /Not signed in/);

  const urls: string[] = [];
  page.on("request", (request) => urls.push(request.url()));
  await page.getByLabel("API token").fill(server.token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1, name: "Fleet overview" }).waitFor();
  await page.getByTestId("stream-status").getByText("Live").waitFor();
  assert.equal(await page.locator('[data-state="ready"]').textContent(), "2");
  assert.ok(!urls.some((u) => u.includes(server.token)), "the token is never in a URL");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("centra-pxe.token")), server.token);
  const cookies = await page.context().cookies();
  assert.deepEqual(cookies, [], "no cookie carries the session");
  await checkAccessibility(page, "overview");
  await screenshot(page, "overview");

  // A reload keeps the tab signed in; signing out forgets the token.
  await page.reload();
  await page.getByRole("heading", { level: 1, name: "Fleet overview" }).waitFor();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API token").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("centra-pxe.token")), null);
  await page.context().close();
});

test("provision from the UI with confirmation, then watch provisioning → provisioned live while the machine installs", async (t) => {
  if (!haveChromium(t)) return;
  const context = await browser!.newContext();
  const page = await newPage(context);
  await signIn(page);
  const overview = await newPage(context); // same tab storage is per page; sign in there too
  await signIn(overview);
  await overview.getByTestId("stream-status").getByText("Live").waitFor();

  await page.getByRole("link", { name: "Nodes", exact: true }).click();
  await page.getByRole("link", { name: "worker-ui-01" }).click();
  await page.getByRole("heading", { level: 1, name: /worker-ui-01/ }).waitFor();
  await page.getByTestId("stream-status").getByText("Live").waitFor();
  await checkAccessibility(page, "node page");

  const t0 = Date.now();
  const lap = (what: string) => process.stdout.write(`  ${what}: ${Date.now() - t0} ms\n`);
  await page.getByRole("button", { name: "Provision…", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: /Provision worker-ui-01/ });
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Cancel", "focus starts on Cancel");
  await checkAccessibility(page, "confirmation dialog");
  await screenshot(page, "provision-dialog");
  // Escape cancels: nothing changed.
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "hidden" });
  assert.equal((await api("GET", `/nodes/${MAC}`)).state, "ready");

  await page.getByRole("button", { name: "Provision…", exact: true }).click();
  await dialog.getByRole("button", { name: "Provision" }).click();
  await page.getByTestId("node-state").getByText("provisioning").waitFor();
  lap("provisioning shown on the node page");
  assert.equal((await api("GET", `/nodes/${MAC}`)).state, "provisioning");
  await overview.locator('[data-state="provisioning"]').getByText("1").waitFor();
  await overview.getByTestId("in-progress").getByText("worker-ui-01").waitFor();
  lap("provisioning shown on the overview");

  // The machine boots and its installer calls back; the pages change without a reload.
  const navigations: string[] = [];
  page.on("framenavigated", (frame) => navigations.push(frame.url()));
  await installAndCallBack(MAC);
  lap("called back");
  await page.getByTestId("node-state").getByText("provisioned").waitFor({ timeout: 10_000 });
  await overview.locator('[data-state="provisioned"]').getByText("1").waitFor({ timeout: 10_000 });
  lap("provisioned shown on both pages");
  assert.deepEqual(navigations, [], "live: no reload");
  await screenshot(page, "node-provisioned");
  await screenshot(overview, "overview-live");
  await context.close();
});

test("the node's boot timeline is drawn as an SVG picture: the attempt's verdict, phases and steps", async (t) => {
  if (!haveChromium(t)) return;
  const page = await newPage();
  await signIn(page);
  const node = await api("GET", `/nodes/${MAC}`);
  const boots = (await api("GET", `/nodes/${MAC}/boots`)).boots as { verdict: string; attempt: number }[];
  assert.equal(boots[0]?.verdict, "installed", "the timeline part recorded the install (w-timeline)");
  await page.goto(`${server.url}/ui/#/nodes/${node.id}`);
  await page.getByTestId("boot-verdict").getByText("installed").waitFor();
  const svg = page.getByTestId("timeline-svg");
  await svg.waitFor();
  assert.match(
    (await svg.locator("title").first().textContent()) ?? "",
    new RegExp(`attempt ${boots[0]!.attempt}, installed`),
  );
  await svg.getByText("HTTP", { exact: true }).waitFor();
  await svg.getByText("LIFECYCLE", { exact: true }).waitFor();
  assert.ok((await svg.locator("rect").count()) >= 1, "spans for the phases and downloads");
  assert.ok((await svg.locator("circle").count()) >= 1, "marks for the instants (the callback)");
  await page.getByText("The same steps as a list").click();
  await page.locator(".timeline-steps li", { hasText: "machine-script" }).first().waitFor();
  await page.locator(".timeline-steps li", { hasText: "HTTP: kernel" }).first().waitFor();
  await page.locator(".timeline-steps li", { hasText: "callback-succeeded" }).first().waitFor();
  await checkAccessibility(page, "node page with its boot timeline");
  await screenshot(page, "node-timeline");

  // A node that never booted shows its lifecycle instead: the states it held and its events.
  const other = await api("GET", "/nodes/52:54:00:d0:00:02");
  await page.goto(`${server.url}/ui/#/nodes/${other.id}`);
  await page.getByText("No boot attempt recorded").waitFor();
  await page.getByTestId("timeline-svg").getByText("State", { exact: true }).waitFor();
  await page.context().close();
});

test("a viewer is offered no action: no provision, reprovision, retire or image switch", async (t) => {
  if (!haveChromium(t)) return;
  const node = await api("GET", "/nodes/52:54:00:d0:00:02");
  // The same node offers an admin its actions: what the viewer misses is the role, not the page.
  const adminPage = await newPage();
  await signIn(adminPage);
  await adminPage.goto(`${server.url}/ui/#/nodes/${node.id}`);
  await adminPage.locator('button[data-action="provision"]').waitFor();
  await adminPage.context().close();

  const context = await browser!.newContext();
  const page = await newPage(context);
  await signIn(page, server.viewerToken);
  assert.match((await page.getByTestId("who").textContent()) ?? "", /dashboard-viewer \(viewer\)/);
  await page.goto(`${server.url}/ui/#/nodes/${node.id}`);
  await page.getByRole("heading", { level: 1, name: /worker-ui-02/ }).waitFor();
  await page.getByTestId("node-state").waitFor();
  assert.equal(await page.locator("button[data-action]").count(), 0);
  await page.goto(`${server.url}/ui/#/images`);
  await page.getByRole("heading", { level: 1, name: "Images" }).waitFor();
  await page.getByRole("cell", { name: "24.11" }).waitFor();
  assert.equal(await page.getByRole("button", { name: /Make current/ }).count(), 0);
  await screenshot(page, "viewer-node");
  await context.close();
});

test("every page passes the accessibility check; images switch back; nodes filter and search", async (t) => {
  if (!haveChromium(t)) return;
  const page = await newPage();
  await signIn(page);
  for (const [path, heading] of [
    ["/nodes", "Nodes"],
    ["/leases", "DHCP leases"],
    ["/images", "Images"],
    ["/health", "Health of the parts"],
  ] as const) {
    await page.goto(`${server.url}/ui/#${path}`);
    await page.getByRole("heading", { level: 1, name: heading }).waitFor();
    await page.locator("[aria-busy=true]").waitFor({ state: "detached" });
    await checkAccessibility(page, path);
    await screenshot(page, path.slice(1));
  }

  // Search by MAC (any spelling) and filter by state, all from the form.
  await page.goto(`${server.url}/ui/#/nodes`);
  await page.getByLabel("Search").fill("52-54-00-D0-00-02");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByTestId("node-count").getByText("1–1 of 1 nodes").waitFor();
  await page.getByTestId("nodes-table").getByText("worker-ui-02").waitFor();
  await page.getByLabel("Search").fill("");
  await page.getByLabel("State").selectOption("provisioned");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByTestId("nodes-table").getByText("worker-ui-01").waitFor();
  assert.equal(await page.getByTestId("nodes-table").locator("tbody tr").count(), 1);

  // Switch back: 24.05 is current, 24.11 becomes it after a confirmation.
  await page.goto(`${server.url}/ui/#/images`);
  await page.getByRole("button", { name: "Make current…" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Make current" }).click();
  await page.getByRole("row", { name: /24\.11.*current/ }).waitFor();
  const images = (await api("GET", "/images")).images as { version: string; current: boolean }[];
  assert.deepEqual(
    images.filter((i) => i.current).map((i) => i.version),
    ["24.11"],
  );
  assert.deepEqual(cspViolations, [], "no Content-Security-Policy violation on any page");
  await page.context().close();
});
