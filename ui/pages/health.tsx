import { ErrorNote, Loading, PageTitle } from "../common.js";
import { useResource } from "../hooks.js";

export interface Health {
  status: string;
  failing?: string[];
  parts: Record<string, { ok: boolean; detail?: string }>;
}

/** `/health` is open (the service manager's probe); 503 still carries the parts. */
export async function fetchHealth(): Promise<Health> {
  const response = await fetch("/health", { cache: "no-store", credentials: "omit" });
  return (await response.json()) as Health;
}

export function HealthList({ health }: { health: Health }) {
  return (
    <ul class="health" data-testid="health">
      {Object.entries(health.parts).map(([name, part]) => (
        <li key={name} class={part.ok ? "ok" : "failing"}>
          <span class="health-mark" aria-hidden="true">
            {part.ok ? "●" : "▲"}
          </span>{" "}
          <strong>{name}</strong> {part.ok ? "serving" : `not serving${part.detail ? `: ${part.detail}` : ""}`}
        </li>
      ))}
    </ul>
  );
}

export function HealthPage() {
  const health = useResource(fetchHealth, []);
  return (
    <>
      <PageTitle>Health of the parts</PageTitle>
      <ErrorNote error={health.error} />
      {health.data ? (
        <>
          <p>
            The server is <strong>{health.data.status === "ok" ? "healthy" : "unhealthy"}</strong>.{" "}
            <button type="button" onClick={health.reload}>
              Check again
            </button>
          </p>
          <HealthList health={health.data} />
        </>
      ) : (
        !health.error && <Loading what="health" />
      )}
    </>
  );
}
