/**
 * The state Centra PXE keeps, behind one interface so the embedded SQLite file and a shared
 * PostgreSQL database (PRODUCT.md §6) are interchangeable. Every method is async because a
 * network database is; the SQLite implementation answers at once.
 */
export interface Store {
  readonly images: ImageRepository;
  /** The schema version the store has migrated to. */
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}

/** One file of an image version, as recorded when it was added. */
export interface ImageFileRecord {
  size: number;
  sha256: string;
}

export interface ImageVersionRecord {
  name: string;
  version: string;
  /** Role (`kernel`, `initrd`) → the file's size and digest. */
  files: Record<string, ImageFileRecord>;
  /** Extra kernel command line the image needs (appended before the profile's). */
  cmdline: string;
  addedAt: string;
}

export interface ImageRepository {
  put(record: ImageVersionRecord): Promise<void>;
  get(name: string, version: string): Promise<ImageVersionRecord | undefined>;
  /** All versions, by name then by the order they were added. */
  list(name?: string): Promise<ImageVersionRecord[]>;
  /** Returns whether a record was removed. */
  remove(name: string, version: string): Promise<boolean>;
}
