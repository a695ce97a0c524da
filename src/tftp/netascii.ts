/**
 * RFC 1350 netascii (RFC 764 NVT ASCII): lines end in CR LF and a bare CR is sent as CR NUL. The
 * server stores files with Unix line ends, so a read in netascii mode converts LF → CR LF and
 * CR → CR NUL. Pure; the size that `tsize` announces is the converted one (RFC 2349 §4).
 */
export function toNetascii(input: Buffer): Buffer {
  let extra = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i];
    if (byte === 0x0a || byte === 0x0d) extra++;
  }
  if (extra === 0) return input;
  const out = Buffer.allocUnsafe(input.length + extra);
  let o = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i]!;
    if (byte === 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    } else if (byte === 0x0d) {
      out[o++] = 0x0d;
      out[o++] = 0x00;
    } else {
      out[o++] = byte;
    }
  }
  return out;
}
