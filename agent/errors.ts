/**
 * Every failure Steward reports carries a stable code. Codes appear in logs and in status
 * documents, so they are API: add new ones, never rename.
 *
 * `retry` says what fixes it: `transient` errors (network, engine restarting) are retried on
 * the next run; `stalled` errors (a bad manifest, a name conflict) need a new commit or a human.
 */
export type ErrorCode =
  | 'E_ARGS'
  | 'E_CONFIG_READ'
  | 'E_CONFIG_PARSE'
  | 'E_CONFIG_INVALID'
  | 'E_CONFIG_TOKEN'
  | 'E_SECRET_KEY'
  | 'E_SECRET_DECRYPT'
  | 'E_REGISTRY_AUTH'
  | 'E_MANIFEST_PARSE'
  | 'E_MANIFEST_INVALID'
  | 'E_MANIFEST_DUPLICATE'
  | 'E_MANIFEST_ENTRY'
  | 'E_MANIFEST_SOURCE'
  | 'E_MANIFEST_DEPENDENCY'
  | 'E_BUNDLE_EMPTY'
  | 'E_GIT_UNREACHABLE'
  | 'E_GIT_AUTH'
  | 'E_GIT_TIMEOUT'
  | 'E_GIT_NO_BRANCH'
  | 'E_GIT_PROTOCOL'
  | 'E_GIT_FETCH'
  | 'E_GIT_TOO_LARGE'
  | 'E_GIT_NO_REVISION'
  | 'E_STATUS_PUSH'
  | 'E_DOCKER_UNREACHABLE'
  | 'E_IMAGE_PULL'
  | 'E_CONTAINER_NAME_TAKEN'
  | 'E_CONTAINER_CREATE'
  | 'E_CONTAINER_START'
  | 'E_CONTAINER_REMOVE'
  | 'E_CONTAINER_UNHEALTHY'
  | 'E_PROBE_FAILED'
  | 'E_HEALTH_TIMEOUT'
  | 'E_GIT_HISTORY'
  | 'E_GIT_UNSIGNED'
  | 'E_GIT_SIGNATURE'
  | 'E_GIT_HOST_KEY'
  | 'E_GIT_TLS'
  | 'E_REVISION_FAILED'
  | 'E_FILE_UNSAFE'
  | 'E_FILE_NOT_OWNED'
  | 'E_FILE_OWNER'
  | 'E_FILE_WRITE'
  | 'E_UNIT_WRITE'
  | 'E_UNIT_START'
  | 'E_UNIT_STOP'
  | 'E_UNIT_ENABLE'
  | 'E_UNIT_NOT_FOUND'
  | 'E_SYSTEMD_UNREACHABLE'
  | 'E_DEPENDENCY_FAILED'
  | 'E_KIND_UNSUPPORTED'
  | 'E_LOCKED'
  | 'E_STATE_WRITE'
  | 'E_INTERNAL';

export type Retry = 'transient' | 'stalled';

/**
 * What fixes each code when the error does not say otherwise. `transient`: the host or a server
 * is not ready yet, and the next run may succeed on its own (the daemon retries sooner, see
 * daemon/loop.ts); `stalled`: the input is wrong or a human must act, and only a new commit or a
 * config change helps. The status document carries the class with every error.
 */
export const RETRY: Readonly<Record<ErrorCode, Retry>> = {
  E_ARGS: 'stalled',
  E_CONFIG_READ: 'stalled',
  E_CONFIG_PARSE: 'stalled',
  E_CONFIG_INVALID: 'stalled',
  E_CONFIG_TOKEN: 'stalled',
  E_SECRET_KEY: 'stalled',
  E_SECRET_DECRYPT: 'stalled',
  E_REGISTRY_AUTH: 'stalled',
  E_MANIFEST_PARSE: 'stalled',
  E_MANIFEST_INVALID: 'stalled',
  E_MANIFEST_DUPLICATE: 'stalled',
  E_MANIFEST_ENTRY: 'stalled',
  E_MANIFEST_SOURCE: 'stalled',
  E_MANIFEST_DEPENDENCY: 'stalled',
  E_BUNDLE_EMPTY: 'stalled',
  E_GIT_UNREACHABLE: 'transient',
  E_GIT_AUTH: 'stalled',
  E_GIT_TIMEOUT: 'transient',
  E_GIT_NO_BRANCH: 'transient',
  E_GIT_PROTOCOL: 'transient',
  E_GIT_FETCH: 'transient',
  E_GIT_TOO_LARGE: 'stalled',
  E_GIT_NO_REVISION: 'transient',
  E_STATUS_PUSH: 'transient',
  E_DOCKER_UNREACHABLE: 'transient',
  E_IMAGE_PULL: 'transient',
  E_CONTAINER_NAME_TAKEN: 'stalled',
  E_CONTAINER_CREATE: 'transient',
  E_CONTAINER_START: 'transient',
  E_CONTAINER_REMOVE: 'transient',
  E_CONTAINER_UNHEALTHY: 'transient',
  E_PROBE_FAILED: 'transient',
  E_HEALTH_TIMEOUT: 'transient',
  E_GIT_HISTORY: 'stalled',
  E_GIT_UNSIGNED: 'stalled',
  E_GIT_SIGNATURE: 'stalled',
  E_GIT_HOST_KEY: 'stalled',
  E_GIT_TLS: 'stalled',
  E_REVISION_FAILED: 'stalled',
  E_FILE_UNSAFE: 'stalled',
  E_FILE_NOT_OWNED: 'stalled',
  E_FILE_OWNER: 'stalled',
  E_FILE_WRITE: 'transient',
  E_UNIT_WRITE: 'transient',
  E_UNIT_START: 'transient',
  E_UNIT_STOP: 'transient',
  E_UNIT_ENABLE: 'transient',
  E_UNIT_NOT_FOUND: 'stalled',
  E_SYSTEMD_UNREACHABLE: 'transient',
  E_DEPENDENCY_FAILED: 'transient',
  E_KIND_UNSUPPORTED: 'stalled',
  E_LOCKED: 'transient',
  E_STATE_WRITE: 'transient',
  E_INTERNAL: 'stalled',
};

export interface ErrorDetail {
  /** Resource id, e.g. Container/web. */
  resource?: string;
  /** Repository-relative file (manifests) or absolute path (config). */
  file?: string;
  line?: number;
  /** JSON pointer of the bad value inside the document. */
  pointer?: string;
}

export class StewardError extends Error {
  override readonly name = 'StewardError';
  readonly code: ErrorCode;
  readonly retry: Retry;
  readonly detail: ErrorDetail;

  constructor(code: ErrorCode, message: string, opts: { retry?: Retry; cause?: unknown } & ErrorDetail = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retry = opts.retry ?? RETRY[code];
    const { resource, file, line, pointer } = opts;
    this.detail = Object.fromEntries(
      Object.entries({ resource, file, line, pointer }).filter(([, v]) => v !== undefined),
    ) as ErrorDetail;
  }

  /** The error as it goes into a status document or a log line: no stack, no cause chain. */
  toJSON(): { code: ErrorCode; message: string; retry: Retry } & ErrorDetail {
    return { code: this.code, message: this.message, retry: this.retry, ...this.detail };
  }
}

/** A bundle of errors found together (e.g. every invalid document of a commit). */
export class StewardErrors extends Error {
  override readonly name = 'StewardErrors';
  constructor(readonly errors: StewardError[]) {
    super(errors.map((e) => formatError(e)).join('\n'));
  }
}

/** One line a human reads: `file:line: pointer: message [CODE]`. */
export function formatError(e: StewardError): string {
  const where = [e.detail.file, e.detail.line].filter((x) => x !== undefined).join(':');
  const parts = [where, e.detail.resource && !where ? e.detail.resource : undefined, e.detail.pointer, e.message];
  return `${parts.filter((p) => p !== undefined && p !== '').join(': ')} [${e.code}]`;
}

/** Wraps anything thrown into a StewardError, keeping one already typed as it is. */
export function toStewardError(
  err: unknown,
  code: ErrorCode,
  message?: string,
  detail: ErrorDetail & { retry?: Retry } = {},
): StewardError {
  if (err instanceof StewardError) return err;
  const text = err instanceof Error ? err.message : String(err);
  return new StewardError(code, message ? `${message}: ${text}` : text, { ...detail, cause: err });
}
