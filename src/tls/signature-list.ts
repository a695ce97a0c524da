/**
 * EFI_SIGNATURE_LIST (UEFI 2.10 §32.4.1 "Signature Database"): how X.509 CA certificates reach
 * EDK2's TLS trust store. OVMF reads the list from QEMU's fw_cfg file `etc/edk2/https/cacerts`
 * (OvmfPkg/Library/TlsAuthConfigLib) into the `TlsCaCertificate` variable, and HttpBootDxe's TLS
 * connections trust exactly those certificates. Real firmware takes the same format in its setup
 * screen ("TLS Auth Configuration") or through the variable. Pure encoding, no I/O.
 *
 * ```
 * EFI_SIGNATURE_LIST {                 all integers little-endian
 *   EFI_GUID SignatureType;            EFI_CERT_X509_GUID
 *   UINT32   SignatureListSize;        the whole list, header included
 *   UINT32   SignatureHeaderSize;      0 for X.509
 *   UINT32   SignatureSize;            16 (owner GUID) + the certificate's DER length
 *   UINT8    SignatureHeader[0];
 *   EFI_SIGNATURE_DATA { EFI_GUID SignatureOwner; UINT8 SignatureData[DER length]; }
 * }
 * ```
 *
 * Every entry of a list has the same SignatureSize, and certificates differ in length, so each
 * certificate is a list of its own; the lists are concatenated (what `p11-kit extract
 * --format=edk2-cacerts` writes).
 */

/** EFI_CERT_X509_GUID {a5c059a1-94e4-4aa7-87b5-ab155c2bf072}. */
export const EFI_CERT_X509_GUID = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";

/** The SignatureOwner we write: any GUID will do for the firmware; this one names Centra PXE's lists. */
export const CENTRA_SIGNATURE_OWNER = "6b4c7a61-1e0f-4c3a-9d5e-63656e747261";

const LIST_HEADER_SIZE = 16 + 4 + 4 + 4;
const GUID_SIZE = 16;

/**
 * A GUID in EFI's byte order: the first three fields little-endian (UINT32, UINT16, UINT16), the
 * last eight bytes as written.
 */
export function encodeGuid(guid: string): Buffer {
  const hex = guid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a GUID: ${guid}`);
  const bytes = Buffer.from(hex, "hex");
  const out = Buffer.alloc(GUID_SIZE);
  out.writeUInt32LE(bytes.readUInt32BE(0), 0);
  out.writeUInt16LE(bytes.readUInt16BE(4), 4);
  out.writeUInt16LE(bytes.readUInt16BE(6), 6);
  bytes.copy(out, 8, 8, 16);
  return out;
}

export function decodeGuid(bytes: Buffer, offset = 0): string {
  const hex = [
    bytes.readUInt32LE(offset).toString(16).padStart(8, "0"),
    bytes
      .readUInt16LE(offset + 4)
      .toString(16)
      .padStart(4, "0"),
    bytes
      .readUInt16LE(offset + 6)
      .toString(16)
      .padStart(4, "0"),
    bytes.subarray(offset + 8, offset + 10).toString("hex"),
    bytes.subarray(offset + 10, offset + 16).toString("hex"),
  ];
  return hex.join("-");
}

/** The signature lists of DER certificates, one list per certificate. */
export function encodeX509SignatureLists(certificates: readonly Buffer[], owner = CENTRA_SIGNATURE_OWNER): Buffer {
  const lists = certificates.map((der) => {
    const signatureSize = GUID_SIZE + der.length;
    const header = Buffer.alloc(LIST_HEADER_SIZE);
    encodeGuid(EFI_CERT_X509_GUID).copy(header, 0);
    header.writeUInt32LE(LIST_HEADER_SIZE + signatureSize, 16);
    header.writeUInt32LE(0, 20);
    header.writeUInt32LE(signatureSize, 24);
    return Buffer.concat([header, encodeGuid(owner), der]);
  });
  return Buffer.concat(lists);
}

/** The certificates (DER) of concatenated signature lists; throws on a malformed list. */
export function decodeSignatureLists(bytes: Buffer): { type: string; owner: string; data: Buffer }[] {
  const entries: { type: string; owner: string; data: Buffer }[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < LIST_HEADER_SIZE) throw new RangeError(`truncated list header at byte ${offset}`);
    const type = decodeGuid(bytes, offset);
    const listSize = bytes.readUInt32LE(offset + 16);
    const headerSize = bytes.readUInt32LE(offset + 20);
    const signatureSize = bytes.readUInt32LE(offset + 24);
    const end = offset + listSize;
    const first = offset + LIST_HEADER_SIZE + headerSize;
    if (listSize < LIST_HEADER_SIZE || end > bytes.length || signatureSize <= GUID_SIZE || first > end)
      throw new RangeError(`malformed signature list at byte ${offset}`);
    if ((end - first) % signatureSize !== 0)
      throw new RangeError(`signature list at byte ${offset} is not a whole number of signatures`);
    for (let at = first; at < end; at += signatureSize)
      entries.push({ type, owner: decodeGuid(bytes, at), data: bytes.subarray(at + GUID_SIZE, at + signatureSize) });
    offset = end;
  }
  return entries;
}

/** The DER bodies of every `CERTIFICATE` block of a PEM text. */
export function pemCertificates(pem: string): Buffer[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) =>
    Buffer.from(block.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, ""), "base64"),
  );
}
