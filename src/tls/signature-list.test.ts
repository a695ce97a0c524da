import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CENTRA_SIGNATURE_OWNER,
  decodeGuid,
  decodeSignatureLists,
  EFI_CERT_X509_GUID,
  encodeGuid,
  encodeX509SignatureLists,
  pemCertificates,
} from "./signature-list.js";

test("EFI_CERT_X509_GUID in EFI byte order: the first three fields little-endian (UEFI spec appendix A)", () => {
  // {0xa5c059a1, 0x94e4, 0x4aa7, {0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72}}
  assert.equal(encodeGuid(EFI_CERT_X509_GUID).toString("hex"), "a159c0a5e494a74a87b5ab155c2bf072");
  assert.equal(decodeGuid(encodeGuid(EFI_CERT_X509_GUID)), EFI_CERT_X509_GUID);
  assert.throws(() => encodeGuid("not-a-guid"));
});

test("one EFI_SIGNATURE_LIST per certificate, sizes as the spec lays them out, decoded back", () => {
  const a = Buffer.alloc(700, 0xaa);
  const b = Buffer.alloc(1021, 0xbb);
  const lists = encodeX509SignatureLists([a, b]);
  // Header 28 bytes, owner GUID 16, then the DER.
  assert.equal(lists.length, 28 + 16 + a.length + 28 + 16 + b.length);
  assert.equal(lists.readUInt32LE(16), 28 + 16 + a.length, "SignatureListSize");
  assert.equal(lists.readUInt32LE(20), 0, "SignatureHeaderSize");
  assert.equal(lists.readUInt32LE(24), 16 + a.length, "SignatureSize");
  const entries = decodeSignatureLists(lists);
  assert.deepEqual(
    entries.map((e) => [e.type, e.owner, e.data.length]),
    [
      [EFI_CERT_X509_GUID, CENTRA_SIGNATURE_OWNER, a.length],
      [EFI_CERT_X509_GUID, CENTRA_SIGNATURE_OWNER, b.length],
    ],
  );
  assert.ok(entries[1]!.data.equals(b));
  assert.throws(() => decodeSignatureLists(lists.subarray(0, lists.length - 1)), /malformed/);
});

test("the certificates of a PEM text, in order", () => {
  const der = Buffer.from("0\x82\x01\x00hello", "latin1");
  const block = `-----BEGIN CERTIFICATE-----\n${der.toString("base64")}\n-----END CERTIFICATE-----\n`;
  const pem = `${block}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n${block}`;
  const certs = pemCertificates(pem);
  assert.equal(certs.length, 2);
  assert.ok(certs[0]!.equals(der));
});
