/**
 * DHCP option codes (RFC 2132 and later), each with the type of its value on the wire. Options are
 * kept as raw bytes in a packet; these numbers and the typed accessors in `packet.ts` give them
 * meaning. Unknown codes pass through untouched.
 */
export const Option = {
  Pad: 0,
  /** IPv4 address. */
  SubnetMask: 1,
  /** IPv4 addresses. */
  Router: 3,
  /** IPv4 addresses. */
  DomainNameServer: 6,
  /** ASCII string (RFC 2132 §3.14). */
  HostName: 12,
  /** ASCII string. */
  DomainName: 15,
  /** IPv4 address. */
  BroadcastAddress: 28,
  /** Opaque; PXE sub-options when option 60 is `PXEClient` (PXE 2.1 §2.2.5). */
  VendorSpecific: 43,
  /** IPv4 address. */
  RequestedIpAddress: 50,
  /** uint32 seconds. */
  LeaseTime: 51,
  /** uint8: 1 `file` holds options, 2 `sname` does, 3 both (RFC 2132 §9.3). */
  Overload: 52,
  /** uint8, see `MessageType`. */
  MessageType: 53,
  /** IPv4 address. */
  ServerIdentifier: 54,
  /** uint8 codes. */
  ParameterRequestList: 55,
  /** ASCII string. */
  Message: 56,
  /** uint16 bytes, at least 576 (RFC 2132 §9.10). */
  MaxMessageSize: 57,
  /** uint32 seconds. */
  RenewalTime: 58,
  /** uint32 seconds. */
  RebindingTime: 59,
  /** ASCII string, e.g. `PXEClient:Arch:00007:UNDI:003016`. */
  VendorClassIdentifier: 60,
  /** Opaque: type byte + identifier (RFC 2132 §9.14). */
  ClientIdentifier: 61,
  /** ASCII string: the TFTP server's name or address. */
  TftpServerName: 66,
  /** ASCII string: the boot file. */
  BootfileName: 67,
  /** RFC 3004 user classes; iPXE sends the bare string `iPXE` instead. */
  UserClass: 77,
  /** Opaque sub-options added by a relay; echoed back verbatim (RFC 3046 §2.2). */
  RelayAgentInformation: 82,
  /** uint16 codes: client system architecture (RFC 4578 §2.1, IANA "Processor Architecture Types"). */
  ClientSystemArchitecture: 93,
  /** 3 bytes: UNDI type, major, minor (RFC 4578 §2.2). */
  ClientNetworkInterface: 94,
  /** Type byte 0 + 16-byte GUID (RFC 4578 §2.3). */
  ClientMachineIdentifier: 97,
  End: 255,
} as const;

export const MessageType = {
  Discover: 1,
  Offer: 2,
  Request: 3,
  Decline: 4,
  Ack: 5,
  Nak: 6,
  Release: 7,
  Inform: 8,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

const messageTypeNames: Record<number, string> = Object.fromEntries(
  Object.entries(MessageType).map(([name, code]) => [code, name.toUpperCase()]),
);

export function messageTypeName(type: number | undefined): string {
  return type === undefined ? "BOOTP" : (messageTypeNames[type] ?? `type-${type}`);
}
