import { ErrorNote, Loading, PageTitle, Time } from "../common.js";
import { useResource, useSession } from "../hooks.js";
import { href, type Route } from "../router.js";

interface Lease {
  address: string;
  mac: string;
  hostname?: string;
  status: string;
  expiresAt: string;
  updatedAt: string;
}

export function LeasesPage({ route }: { route: Route }) {
  const { client } = useSession();
  const all = route.params.get("all") === "1";
  const leases = useResource(() => client.get<{ leases: Lease[] }>(`/leases${all ? "?all=1" : ""}`), [client, all]);
  return (
    <>
      <PageTitle>DHCP leases</PageTitle>
      <p>
        {all ? (
          <a href={href("/leases")}>Show active leases only</a>
        ) : (
          <a href={href("/leases", { all: "1" })}>Also show released, expired and declined addresses</a>
        )}{" "}
        <button type="button" onClick={leases.reload}>
          Refresh
        </button>
      </p>
      <ErrorNote error={leases.error} />
      {!leases.data && !leases.error && <Loading what="leases" />}
      {leases.data && leases.data.leases.length === 0 && <p class="muted">No leases.</p>}
      {leases.data && leases.data.leases.length > 0 && (
        <div class="table-wrap">
          <table data-testid="leases-table">
            <caption class="visually-hidden">DHCP leases by address</caption>
            <thead>
              <tr>
                <th scope="col">Address</th>
                <th scope="col">MAC</th>
                <th scope="col">Hostname</th>
                <th scope="col">Status</th>
                <th scope="col">Expires</th>
              </tr>
            </thead>
            <tbody>
              {leases.data.leases.map((lease) => (
                <tr key={lease.address}>
                  <td class="mono">{lease.address}</td>
                  <td class="mono">{lease.mac || "—"}</td>
                  <td>{lease.hostname ?? "—"}</td>
                  <td>{lease.status}</td>
                  <td>
                    <Time iso={lease.expiresAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
