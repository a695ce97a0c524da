import { useState } from "preact/hooks";
import { ConfirmDialog, ErrorNote, Loading, PageTitle, Time } from "../common.js";
import { useResource, useSession } from "../hooks.js";
import { can } from "../session.js";

interface ImageVersion {
  name: string;
  /** The build line (x86_64, arm64, arm32): each has its own versions and current. */
  arch: string;
  version: string;
  files: Record<string, { size: number; sha256: string }>;
  cmdline: string;
  addedAt: string;
  current: boolean;
}

export function ImagesPage() {
  const { client, identity, announce } = useSession();
  const images = useResource(() => client.get<{ images: ImageVersion[] }>("/images"), [client]);
  const [pending, setPending] = useState<ImageVersion | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  const maySwitch = can(identity, "images");
  // One table per image and architecture: `current` is per build line, so is the switch.
  const buildOf = (image: ImageVersion) => (image.arch === "x86_64" ? image.name : `${image.name} (${image.arch})`);
  const byName = new Map<string, ImageVersion[]>();
  for (const image of images.data?.images ?? [])
    byName.set(buildOf(image), [...(byName.get(buildOf(image)) ?? []), image]);

  const confirm = async () => {
    if (!pending) return;
    setBusy(true);
    setError(undefined);
    try {
      await client.send("PUT", `/images/${encodeURIComponent(pending.name)}/current`, {
        version: pending.version,
        arch: pending.arch,
      });
      announce(`${buildOf(pending)} now boots version ${pending.version}`);
      images.reload();
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(false);
      setPending(undefined);
    }
  };

  return (
    <>
      <PageTitle>Images</PageTitle>
      <ErrorNote error={images.error ?? error} />
      {!images.data && !images.error && <Loading what="images" />}
      {images.data && byName.size === 0 && (
        <p class="muted">No image installed (centra-pxe images add NAME --kernel F --initrd F).</p>
      )}
      {[...byName].map(([name, versions]) => (
        <section key={name} aria-labelledby={`image-${name.replace(/\W+/g, "-")}`}>
          <h2 id={`image-${name.replace(/\W+/g, "-")}`}>{name}</h2>
          <div class="table-wrap">
            <table>
              <caption class="visually-hidden">Versions of {name}, oldest first</caption>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Added</th>
                  <th scope="col">Files</th>
                  <th scope="col">Current</th>
                  {maySwitch && <th scope="col">Action</th>}
                </tr>
              </thead>
              <tbody>
                {versions.map((v) => (
                  <tr key={v.version}>
                    <td class="mono">{v.version}</td>
                    <td>
                      <Time iso={v.addedAt} />
                    </td>
                    <td>
                      {Object.entries(v.files)
                        .map(([role, f]) => `${role} ${(f.size / 1048576).toFixed(1)} MiB`)
                        .join(", ")}
                    </td>
                    <td>{v.current ? <strong>current</strong> : ""}</td>
                    {maySwitch && (
                      <td>
                        {!v.current && (
                          <button type="button" onClick={() => setPending(v)}>
                            Make current…
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ))}
      <ConfirmDialog
        open={pending !== undefined}
        title={pending ? `Boot ${buildOf(pending)} ${pending.version}?` : ""}
        confirmLabel="Make current"
        busy={busy}
        onConfirm={confirm}
        onCancel={() => setPending(undefined)}
      >
        <p>
          Every {pending?.arch} machine that boots {pending?.name} from now on gets this version, unless its node pins
          another.
        </p>
      </ConfirmDialog>
    </>
  );
}
