/**
 * What the network reports of a machine: DHCP (a DISCOVER/REQUEST of a network-boot client) and
 * iPXE (a fetch of the per-machine script) alike. The one sighting type of the program: the DHCP
 * handler produces it, the inventory (src/provisioning/sightings.ts) records it. Everything in it
 * is the machine's claim — public on the provisioning network and forgeable — never an identity.
 */
export interface Sighting {
  /** Normalised `aa:bb:…` (DHCP `chaddr` of an Ethernet client, or iPXE `${mac}`). */
  mac: string;
  /** `bios`, `efi-x64`, … from DHCP option 93; `pcbios`, `efi` from iPXE. */
  firmware?: string;
  /** DHCP option 93, the client system architecture code (RFC 4578 §2.1). */
  arch?: number;
  /** SMBIOS UUID: DHCP option 97 or iPXE `${uuid}`. */
  uuid?: string;
  /** SMBIOS serial (iPXE `${serial}`). */
  serial?: string;
  /** DHCP option 77, the first user class (`iPXE` once iPXE runs). */
  userClass?: string;
  via: "dhcp" | "ipxe";
}
