import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import type { NodeRecord } from "./api.js";

export function StateBadge({ state }: { state: string }) {
  return <span class={`state state-${state}`}>{state}</span>;
}

export function ErrorNote({ error }: { error: Error | undefined }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {error.message}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" aria-busy="true">
      Loading {what}…
    </p>
  );
}

/** An ISO time as local time, with the exact value for a hover and for screen readers. */
export function Time({ iso }: { iso: string | undefined }) {
  if (!iso) return <span class="muted">—</span>;
  const at = new Date(iso);
  return (
    <time dateTime={iso} title={iso}>
      {at.toLocaleString()}
    </time>
  );
}

/** Seconds, minutes or hours since `iso`, for "provisioning for 4 min". */
export function since(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function nodeName(node: Pick<NodeRecord, "hostname" | "macs" | "id">): string {
  return node.hostname ?? node.macs[0] ?? node.id;
}

export function PageTitle({ children }: { children: ComponentChildren }) {
  // The page's h1 is where focus goes after a route change (main.tsx), so it can take focus.
  return (
    <h1 tabIndex={-1} id="page-title">
      {children}
    </h1>
  );
}

/**
 * A modal confirmation on the native <dialog>: showModal() traps focus and Escape cancels; focus
 * starts on Cancel (the safe choice) and returns to the button that opened it (the browser does).
 */
export function ConfirmDialog(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  busy?: boolean;
  onConfirm(): void;
  onCancel(): void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (props.open && !element.open) {
      element.showModal();
      cancel.current?.focus();
    } else if (!props.open && element.open) element.close();
  }, [props.open]);
  return (
    <dialog
      ref={dialog}
      aria-labelledby="confirm-title"
      aria-describedby="confirm-body"
      onCancel={(event) => {
        event.preventDefault();
        props.onCancel();
      }}
    >
      <h2 id="confirm-title">{props.title}</h2>
      <div id="confirm-body">{props.children}</div>
      <div class="dialog-buttons">
        <button type="button" ref={cancel} onClick={props.onCancel} disabled={props.busy}>
          Cancel
        </button>
        <button
          type="button"
          class={props.danger ? "danger" : "primary"}
          onClick={props.onConfirm}
          disabled={props.busy}
        >
          {props.confirmLabel}
        </button>
      </div>
    </dialog>
  );
}
