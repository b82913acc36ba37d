import type { ContainerSpec } from '../types/container.js';
import type { FileSpec } from '../types/file.js';
import type { ServiceSpec } from '../types/service.js';

/**
 * The registry of kinds, manifest side: what the bundle knows of a kind before any host is
 * involved. A kind's schema is schemas/<kind in lower case>.schema.json (its types are generated
 * from it into agent/types/); its driver is one line in resources/registry.ts. Nothing else in
 * agent/ names a kind.
 */
export interface KindSpecs {
  Container: ContainerSpec;
  File: FileSpec;
  Service: ServiceSpec;
}

export type Kind = keyof KindSpecs;

export interface KindRules<S> {
  /** Apply order among resources that do not depend on each other: lower first. */
  order: number;
  /** Whether a resource of the kind can be restarted, i.e. may carry `restartOn`. */
  restartable: boolean;
  /** Whether the spec takes bytes from `content` or a `source` file of the same commit. */
  carriesData: boolean;
  /** What two resources of the kind must not share, e.g. "path /etc/x": they would fight. */
  exclusive?: (spec: S) => string;
  /**
   * Whether changes of the kind that do not depend on each other may be applied at the same time
   * (bounded). A change of a kind that is not concurrent waits for everything before it in the
   * plan, and everything after it waits for it.
   */
  concurrent: boolean;
}

export const KIND_RULES: { readonly [K in Kind]: KindRules<KindSpecs[K]> } = {
  Container: { order: 2, restartable: true, carriesData: false, concurrent: true },
  File: { order: 0, restartable: false, carriesData: true, exclusive: (s) => `path ${s.path}`, concurrent: false },
  Service: { order: 1, restartable: true, carriesData: true, exclusive: (s) => `unit ${s.unit}`, concurrent: false },
};

export const KINDS = Object.keys(KIND_RULES) as readonly Kind[];

export const isKind = (k: unknown): k is Kind => typeof k === 'string' && Object.hasOwn(KIND_RULES, k);

/** One desired resource of kind K, as the bundle holds it. */
export interface DesiredOf<K extends Kind> {
  /** "Container/web" */
  id: string;
  kind: K;
  name: string;
  spec: KindSpecs[K];
  /** Where the document was declared: repository-relative file and line. */
  file: string;
  line: number;
  /** The line of a value inside the document, for errors found after parsing. */
  at?: (pointer: string) => number;
  /** The bytes of a kind that carries data: `content`, or the `source` file read from the same commit. */
  data?: Buffer;
  /**
   * A Container's env with the values of its envFrom files merged in, resolved on the host from
   * the same commit. Not enumerable: it may hold decrypted secrets and is never serialized.
   */
  env?: Record<string, string>;
}

export type Desired = { [K in Kind]: DesiredOf<K> }[Kind];
export type DesiredContainer = DesiredOf<'Container'>;
export type DesiredFile = DesiredOf<'File'>;
export type DesiredService = DesiredOf<'Service'>;
