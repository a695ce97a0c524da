import { DEFAULT_CIPHERS, type TlsOptions } from "node:tls";

/**
 * The TLS side of the boot listener (`http.tls`, issue 17). Node's defaults are made for browsers
 * and refuse what firmware offers:
 *
 * - EDK2's TlsDxe (OVMF, and the UEFI HTTP boot of most servers) speaks TLS 1.2 only, offers no
 *   ECDHE suite at all, only DHE-RSA and plain-RSA key exchange with AES (GCM on current EDK2, CBC
 *   with SHA-256 on older builds). Node enables DHE only with DH parameters (`dhparam: 'auto'`:
 *   the RFC 7919 group OpenSSL picks for the key size) and its default list has no plain-RSA
 *   suite, so without these settings the handshake ends in handshake_failure.
 * - iPXE offers ECDHE and AES-GCM: the default list serves it first.
 *
 * The firmware suites go after Node's defaults, and the server's order wins, so a client that can
 * do ECDHE still gets it.
 */
export const FIRMWARE_CIPHERS = [
  "DHE-RSA-AES256-GCM-SHA384",
  "DHE-RSA-AES128-GCM-SHA256",
  "AES256-GCM-SHA384",
  "AES128-GCM-SHA256",
  "DHE-RSA-AES256-SHA256",
  "DHE-RSA-AES128-SHA256",
  "AES256-SHA256",
  "AES128-SHA256",
] as const;

export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
}

/**
 * Server options for the boot listener. `handshakeTimeoutMs`: a connection that has not finished
 * its handshake by then is closed; a stranger who opens connections and sends nothing (or sends
 * ClientHello bytes one a minute) holds a socket only that long (Node's default is 120 s).
 */
export function bootTlsOptions(material: TlsMaterial, handshakeTimeoutMs: number): TlsOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: "TLSv1.2",
    ciphers: `${DEFAULT_CIPHERS}:${FIRMWARE_CIPHERS.join(":")}`,
    honorCipherOrder: true,
    dhparam: "auto",
    handshakeTimeout: handshakeTimeoutMs,
  };
}
