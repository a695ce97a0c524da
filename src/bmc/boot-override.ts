import type { BootDevice, BootDeviceResult, BootOptions, BootOverride } from "./client.js";

/** The request as the BMC should keep it, defaults filled in. */
export function bootRequest(device: BootDevice, options: BootOptions = {}): BootDeviceResult["requested"] {
  const requested: BootDeviceResult["requested"] = { device, persistent: options.persistent ?? false };
  if (options.efi !== undefined) requested.efi = options.efi;
  return requested;
}

/**
 * What the BMC did not keep of a boot request, in words, or undefined when it kept all of it.
 * BMCs in the field drop parts of a request without an error: some ignore IPMI `efiboot` (the
 * machine then tries a legacy PXE ROM it may not have), some keep a one-time flag as persistent,
 * some clear the flag again (the IPMI 60 s timeout). A mode the BMC does not report is not a mismatch.
 */
export function bootMismatch(requested: BootDeviceResult["requested"], readBack: BootOverride): string | undefined {
  const problems: string[] = [];
  if (readBack.device !== requested.device)
    problems.push(`device ${readBack.device} where ${requested.device} was set`);
  if (readBack.device !== "none" && readBack.persistent !== requested.persistent)
    problems.push(readBack.persistent ? "persistent where one-time was set" : "one-time where persistent was set");
  if (requested.efi !== undefined && readBack.efi !== undefined && readBack.efi !== requested.efi)
    problems.push(readBack.efi ? "UEFI mode where legacy was set" : "legacy mode where UEFI (efiboot) was set");
  return problems.length === 0 ? undefined : `the BMC reports ${problems.join(", ")} (${readBack.raw})`;
}

/** `setBootDevice`'s answer from a request and its read-back. */
export function bootResult(requested: BootDeviceResult["requested"], readBack: BootOverride): BootDeviceResult {
  const mismatch = bootMismatch(requested, readBack);
  return mismatch === undefined ? { requested, readBack } : { requested, readBack, mismatch };
}
