import t from 'tap';
import { RETRY, StewardError, toStewardError, type ErrorCode, type Retry } from '../agent/errors.js';
import { checkSchema } from '../agent/manifest/schema.js';

// Every error code, with the class that decides what happens next: `transient` errors are
// retried sooner by the daemon (nothing needs to change), `stalled` ones wait for a new commit
// or a human. Written out here on purpose: moving a code to the other class changes how a
// fleet behaves, so it must change this table too.
const TABLE: Array<[ErrorCode, Retry]> = [
  ['E_ARGS', 'stalled'],
  ['E_CONFIG_READ', 'stalled'],
  ['E_CONFIG_PARSE', 'stalled'],
  ['E_CONFIG_INVALID', 'stalled'],
  ['E_CONFIG_TOKEN', 'stalled'],
  ['E_SECRET_KEY', 'stalled'],
  ['E_SECRET_DECRYPT', 'stalled'],
  ['E_REGISTRY_AUTH', 'stalled'],
  ['E_MANIFEST_PARSE', 'stalled'],
  ['E_MANIFEST_INVALID', 'stalled'],
  ['E_MANIFEST_DUPLICATE', 'stalled'],
  ['E_MANIFEST_ENTRY', 'stalled'],
  ['E_MANIFEST_SOURCE', 'stalled'],
  ['E_MANIFEST_DEPENDENCY', 'stalled'],
  ['E_BUNDLE_EMPTY', 'stalled'],
  ['E_GIT_UNREACHABLE', 'transient'],
  ['E_GIT_AUTH', 'stalled'],
  ['E_GIT_TIMEOUT', 'transient'],
  ['E_GIT_NO_BRANCH', 'transient'],
  ['E_GIT_PROTOCOL', 'transient'],
  ['E_GIT_FETCH', 'transient'],
  ['E_GIT_TOO_LARGE', 'stalled'],
  ['E_GIT_NO_REVISION', 'transient'],
  ['E_STATUS_PUSH', 'transient'],
  ['E_DOCKER_UNREACHABLE', 'transient'],
  ['E_IMAGE_PULL', 'transient'],
  ['E_CONTAINER_NAME_TAKEN', 'stalled'],
  ['E_CONTAINER_CREATE', 'transient'],
  ['E_CONTAINER_START', 'transient'],
  ['E_CONTAINER_REMOVE', 'transient'],
  ['E_CONTAINER_UNHEALTHY', 'transient'],
  ['E_PROBE_FAILED', 'transient'],
  ['E_HEALTH_TIMEOUT', 'transient'],
  ['E_GIT_HISTORY', 'stalled'],
  ['E_GIT_UNSIGNED', 'stalled'],
  ['E_GIT_SIGNATURE', 'stalled'],
  ['E_GIT_HOST_KEY', 'stalled'],
  ['E_GIT_TLS', 'stalled'],
  ['E_REVISION_FAILED', 'stalled'],
  ['E_FILE_UNSAFE', 'stalled'],
  ['E_FILE_NOT_OWNED', 'stalled'],
  ['E_FILE_OWNER', 'stalled'],
  ['E_FILE_WRITE', 'transient'],
  ['E_UNIT_WRITE', 'transient'],
  ['E_UNIT_START', 'transient'],
  ['E_UNIT_STOP', 'transient'],
  ['E_UNIT_ENABLE', 'transient'],
  ['E_UNIT_NOT_FOUND', 'stalled'],
  ['E_SYSTEMD_UNREACHABLE', 'transient'],
  ['E_DEPENDENCY_FAILED', 'transient'],
  ['E_KIND_UNSUPPORTED', 'stalled'],
  ['E_LOCKED', 'transient'],
  ['E_STATE_WRITE', 'transient'],
  ['E_INTERNAL', 'stalled'],
];

t.test('every error code has its retry class, and a new error gets it unless it says otherwise', async (t) => {
  t.same(Object.keys(RETRY).sort(), TABLE.map(([c]) => c).sort(), 'the table lists every code of agent/errors.ts');
  for (const [code, retry] of TABLE) {
    const e = new StewardError(code, 'x');
    t.equal(e.retry, retry, code);
    t.equal(toStewardError(new Error('boom'), code).retry, retry, `${code} (wrapped)`);
  }
  const other: Retry = RETRY.E_IMAGE_PULL === 'transient' ? 'stalled' : 'transient';
  t.equal(new StewardError('E_IMAGE_PULL', 'x', { retry: other }).retry, other, 'an error may say otherwise');
});

t.test('the class goes into the status document with the error, and the schema takes it', async (t) => {
  const e = new StewardError('E_IMAGE_PULL', 'cannot pull image x', { resource: 'Container/web' });
  t.same(e.toJSON(), {
    code: 'E_IMAGE_PULL',
    message: 'cannot pull image x',
    retry: 'transient',
    resource: 'Container/web',
  });
  const doc = {
    host: 'h',
    labels: {},
    agentVersion: '0.1.0',
    updatedAt: '2026-12-02T00:00:00.000Z',
    heartbeatSeconds: 60,
    desiredRevision: null,
    appliedRevision: null,
    lastGoodRevision: null,
    phase: 'Failed',
    conditions: [],
    resources: {},
    lastRun: {
      startedAt: '2026-12-02T00:00:00.000Z',
      durationMs: 1,
      revision: null,
      result: 'Failed',
      counts: { resources: 0, changed: 0, failed: 0, skipped: 0, pruned: 0, drift: 0 },
    },
    errors: [e.toJSON(), new StewardError('E_MANIFEST_INVALID', 'bad', { file: 'a.yaml', line: 2 }).toJSON()],
    facts: {},
  };
  t.same(checkSchema('host-status', doc), []);
  t.not(
    checkSchema('host-status', { ...doc, errors: [{ ...e.toJSON(), retry: 'later' }] }).length,
    0,
    'only the two classes',
  );
});
