/* Generated from schemas/file.schema.json by schemas/gen-types.mjs. Do not edit. */

/**
 * Items: A resource id, Kind/name, e.g. Container/web (Kind is Container, File or Service).
 */
export type ResourceIds = string[];

/**
 * A file on the host below one of the configured files.roots.
 */
export interface FileResource {
  apiVersion: "steward/v1";
  kind: "File";
  metadata: Metadata;
  spec: FileSpec;
}
export interface Metadata {
  /**
   * Resource name: lower-case letters, digits, '-' and '.', starting with a letter or digit.
   */
  name: string;
  labels?: {
    [k: string]: string | undefined;
  };
}
export interface FileSpec {
  /**
   * Absolute path below a configured root.
   */
  path: string;
  content?: string;
  /**
   * A file in the repository, relative to the manifest's file.
   */
  source?: string;
  /**
   * The source is a SOPS file: the host writes the decrypted document, in its own format. Needs source.
   */
  decrypt?: "sops";
  /**
   * Octal permissions as a string, e.g. "0644".
   */
  mode?: string;
  owner?: string;
  group?: string;
  ensure?: "present" | "absent";
  dependsOn?: ResourceIds;
  restartOn?: ResourceIds;
}
