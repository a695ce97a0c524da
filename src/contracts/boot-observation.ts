/**
 * What each protocol part saw of a machine's boot, reported to whoever joins them into a boot
 * timeline (src/timeline). The protocols do not know each other (docs/LAYOUT.md), so each reports
 * only what it knows: DHCP the MAC and the address it handed out, TFTP and HTTP the client address
 * (the collector maps it to a MAC through what DHCP reported). Everything here is what the network
 * claimed, public and forgeable: a timeline is a diagnosis, never an identity.
 *
 * An observer must return at once and never throw: it is called on the protocol's hot path.
 */
export type BootObservation = DhcpObservation | TftpObservation | HttpObservation;

export type BootObserver = (observation: BootObservation) => void;

/** One DHCP request and what we answered (RFC 2131 §3.1: DISCOVER → OFFER, REQUEST → ACK/NAK). */
export interface DhcpObservation {
  source: "dhcp";
  /** Unix ms. */
  at: number;
  /** Normalised `aa:bb:…` (chaddr). */
  mac: string;
  /** The client's message type: `DISCOVER`, `REQUEST` (src/dhcp/options.ts names). */
  message: string;
  /** Our answer: `OFFER`, `ACK`, `NAK`; undefined when we did not answer. */
  reply?: string;
  /** Why there was no answer (the handler's `ignore` reason). */
  ignored?: string;
  /**
   * The address this exchange ties to the MAC: yiaddr of our OFFER/ACK, or (proxy mode, where the
   * site's server answers) the address the client REQUESTed. TFTP and HTTP are joined through it.
   */
  address?: string;
  /** `bios`, `efi-x64`, … (DHCP option 93, RFC 4578 §2.1). */
  firmware?: string;
  arch?: number;
  /** Option 77, the first user class: `iPXE` once iPXE runs (the chainload's second DHCP). */
  userClass?: string;
  /** A PXE ROM or iPXE (vendor class `PXEClient`/`HTTPClient` or user class iPXE), not an OS's DHCP client. */
  bootClient: boolean;
}

export type TftpOutcome = "completed" | "aborted" | "failed" | "refused";

/** One TFTP read request, reported once it ended (RFC 1350). */
export interface TftpObservation {
  source: "tftp";
  /** Unix ms of the end; the transfer started `ms` earlier. */
  at: number;
  /** The client's IPv4 address. */
  client: string;
  /** The file name as requested. */
  file: string;
  outcome: TftpOutcome;
  /** Payload bytes sent (retransmissions included). */
  bytes: number;
  /** The file's size, when it was found. */
  size?: number;
  ms: number;
  retransmissions: number;
  /** Why it was aborted, failed or refused (the client's ERROR message, a timeout, "file not found"). */
  reason?: string;
}

/** What a boot path served over HTTP is, by the paths of PRODUCT.md §3. */
export type HttpFileKind = "entry-script" | "machine-script" | "bootloader" | "kernel" | "initrd" | "image-file";

/** One HTTP request of a boot path, reported once its response ended (completely or not). */
export interface HttpObservation {
  source: "http";
  /** Unix ms of the end; the request started `ms` earlier. */
  at: number;
  client: string;
  /** The path without its query. */
  path: string;
  kind: HttpFileKind;
  /** The listener it came in on: `https` (http.tls) or plain `http`; what proves a boot stayed on TLS. */
  scheme: "http" | "https";
  method: string;
  status: number;
  /** Body bytes sent: the whole Content-Length when complete, else what left before the connection closed. */
  bytes: number;
  /** The Content-Length announced. */
  size?: number;
  ms: number;
  /** The response ended normally (false: the client went away mid-body). */
  complete: boolean;
  /** `machine-script` only: the MAC iPXE put in the query (`${mac}`), and what the boot decision was. */
  mac?: string;
  decision?: BootDecision;
}

/** What the per-machine script told the machine to do (src/boot/spec.ts `BootSpec`, in brief). */
export interface BootDecision {
  /** `image`, `menu`, `localdisk`, `none`, `unavailable`. */
  boot: string;
  profile?: string;
  /** `name/version`. */
  image?: string;
  /** The image boot installs: its kernel line carries the installer's callback (`centra.api=`). */
  install?: boolean;
  /** Why not (`none`, `unavailable`). */
  reason?: string;
}
