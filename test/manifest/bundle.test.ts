import t from 'tap';
import { buildBundle } from '../../agent/manifest/bundle.js';
import { formatError } from '../../agent/errors.js';

const REV = 'a'.repeat(40);
const head = (kind: string, name: string) => `apiVersion: steward/v1\nkind: ${kind}\nmetadata: { name: ${name} }\n`;

/** Each malformed manifest and the exact lines a user sees (file:line: pointer: message [CODE]). */
const malformed: Array<[string, string, string[]]> = [
  ['syntax error', 'apiVersion: steward/v1\nkind: [Container\n', ['hosts/a/m.yaml:2: Flow sequence in block collection must be sufficiently indented and end with a ] [E_MANIFEST_PARSE]']],
  ['duplicate key', 'kind: Container\nkind: File\n', ['hosts/a/m.yaml:2: Map keys must be unique [E_MANIFEST_PARSE]']],
  ['not a mapping', '- just\n- a list\n', ['hosts/a/m.yaml:1: /: a document must be a mapping with apiVersion, kind, metadata and spec [E_MANIFEST_INVALID]']],
  ['unknown kind', head('Gadget', 'w') + 'spec: {}\n', ['hosts/a/m.yaml:2: /kind: unknown kind "Gadget"; expected one of Container, File, Service [E_MANIFEST_INVALID]']],
  ['missing kind', 'apiVersion: steward/v1\nmetadata: { name: w }\n', ['hosts/a/m.yaml:1: /kind: missing required field "kind" [E_MANIFEST_INVALID]']],
  ['wrong apiVersion', 'apiVersion: steward/v2\nkind: Container\nmetadata: { name: w }\nspec: { image: x }\n', ['hosts/a/m.yaml:1: /apiVersion: must be "steward/v1" [E_MANIFEST_INVALID]']],
  ['missing image', head('Container', 'web') + 'spec:\n  command: [sh]\n', ['hosts/a/m.yaml:5: /spec/image: missing required field "image" [E_MANIFEST_INVALID]']],
  ['bad name', head('Container', 'Web_1') + 'spec: { image: x }\n', ["hosts/a/m.yaml:3: /metadata/name: does not match the expected form (Resource name: lower-case letters, digits, '-' and '.', starting with a letter or digit.) [E_MANIFEST_INVALID]"]],
  ['unknown field', head('Container', 'web') + 'spec:\n  image: x\n  imagePullPolicy: Always\n', ['hosts/a/m.yaml:6: /spec/imagePullPolicy: unknown field "imagePullPolicy" [E_MANIFEST_INVALID]']],
  ['env number', head('Container', 'web') + 'spec:\n  image: x\n  env:\n    PORT: 8080\n', ['hosts/a/m.yaml:7: /spec/env/PORT: must be a string [E_MANIFEST_INVALID]']],
  ['bad port', head('Container', 'web') + 'spec:\n  image: x\n  ports: ["80:80", "eighty"]\n', ['hosts/a/m.yaml:6: /spec/ports/1: does not match the expected form ([hostIp:][hostPort:]containerPort[/proto], e.g. "8080:80" or "127.0.0.1:53:53/udp".) [E_MANIFEST_INVALID]']],
  ['bad restart', head('Container', 'web') + 'spec:\n  image: x\n  restart: sometimes\n', ['hosts/a/m.yaml:6: /spec/restart: must be one of: "no", "always", "unless-stopped", "on-failure" [E_MANIFEST_INVALID]']],
  ['reserved label', head('Container', 'web') + 'spec:\n  image: x\n  labels:\n    steward.id: mine\n', ['hosts/a/m.yaml:7: /spec/labels/steward.id: key "steward.id" is not allowed (Container labels; the steward.* prefix is reserved.) [E_MANIFEST_INVALID]']],
  ['healthcheck test type', head('Container', 'web') + 'spec:\n  image: x\n  healthcheck: { test: 5 }\n', ['hosts/a/m.yaml:6: /spec/healthcheck/test: must be one of these types: array, string [E_MANIFEST_INVALID]']],
  ['file both content and source', head('File', 'cfg') + 'spec: { path: /etc/kiosk/a, content: x, source: y }\n', ['hosts/a/m.yaml:4: /spec: cannot have both "content" and "source"; keep exactly one [E_MANIFEST_INVALID]']],
  ['file neither', head('File', 'cfg') + 'spec: { path: /etc/kiosk/a }\n', ['hosts/a/m.yaml:4: /spec: needs exactly one of "content" or "source" [E_MANIFEST_INVALID]']],
  ['file relative path', head('File', 'cfg') + 'spec: { path: etc/kiosk/a, content: x }\n', ['hosts/a/m.yaml:4: /spec/path: does not match the expected form (Absolute path below a configured root.) [E_MANIFEST_INVALID]']],
  ['service unit', head('Service', 'kiosk') + 'spec: { unit: kiosk }\n', ['hosts/a/m.yaml:4: /spec/unit: does not match the expected form (A systemd unit name with its type, e.g. kiosk.service or backup.timer.) [E_MANIFEST_INVALID]']],
  ['unknown dependency', head('Container', 'web') + 'spec:\n  image: x\n  dependsOn: [File/nope]\n', ["hosts/a/m.yaml:6: /spec/dependsOn/0: dependsOn names File/nope, which is not in this host's bundle [E_MANIFEST_DEPENDENCY]"]],
  ['bad dependency id', head('Container', 'web') + 'spec:\n  image: x\n  restartOn: [Pod/x]\n', ['hosts/a/m.yaml:6: /spec/restartOn/0: does not match the expected form (A resource id, Kind/name, e.g. Container/web (Kind is Container, File or Service).) [E_MANIFEST_INVALID]']],
];

t.test('malformed manifests: each error names file, line and pointer', async (t) => {
  for (const [name, text, want] of malformed) {
    const { bundle, errors } = buildBundle(REV, [{ path: 'hosts/a/m.yaml', text }]);
    t.equal(bundle, undefined, `${name}: bundle rejected`);
    t.same(errors.map(formatError), want, name);
  }
});

t.test('one invalid document rejects the whole bundle', async (t) => {
  const good = head('Container', 'web') + 'spec: { image: x }\n';
  const bad = head('Container', 'db') + 'spec: { image: 7 }\n';
  const { bundle, errors } = buildBundle(REV, [{ path: 'a.yaml', text: `${good}---\n${bad}` }]);
  t.equal(bundle, undefined);
  t.same(errors.map(formatError), ['a.yaml:9: /spec/image: must be a string [E_MANIFEST_INVALID]']);
});

t.test('the same id in two files names both', async (t) => {
  const doc = head('Container', 'web') + 'spec: { image: x }\n';
  const { errors } = buildBundle(REV, [
    { path: 'groups/kiosk/web.yaml', text: doc },
    { path: 'hosts/a/web.yml', text: `# comment\n${doc}` },
  ]);
  t.same(errors.map(formatError), ['hosts/a/web.yml:2: /metadata/name: Container/web is declared twice: groups/kiosk/web.yaml:1 and hosts/a/web.yml:2 [E_MANIFEST_DUPLICATE]']);
});

t.test('multi-document YAML and JSON make one bundle in dependency order', async (t) => {
  const yaml = [
    head('Container', 'web') + 'spec:\n  image: local/busybox:1\n  dependsOn: [Container/db]\n',
    head('Container', 'db') + 'spec: { image: local/busybox:1 }\n',
    '', // an empty document is skipped
  ].join('---\n');
  const json = JSON.stringify({ apiVersion: 'steward/v1', kind: 'Container', metadata: { name: 'cache' }, spec: { image: 'x', dependsOn: ['Container/web'] } });
  const { bundle, errors } = buildBundle(REV, [
    { path: 'hosts/a/app.yaml', text: yaml },
    { path: 'hosts/a/cache.json', text: json },
  ]);
  t.same(errors, []);
  t.same(bundle?.resources.map((r) => `${r.id}@${r.file}:${r.line}`), ['Container/db@hosts/a/app.yaml:8', 'Container/web@hosts/a/app.yaml:1', 'Container/cache@hosts/a/cache.json:1']);
});

t.test('a dependency cycle names its ids', async (t) => {
  const a = head('Container', 'a') + 'spec: { image: x, dependsOn: [Container/b] }\n';
  const b = head('Container', 'b') + 'spec: { image: x, restartOn: [Container/a] }\n';
  const { errors } = buildBundle(REV, [{ path: 'c.yaml', text: `${a}---\n${b}` }]);
  t.same(errors.map(formatError), ['c.yaml:1: dependency cycle: Container/a -> Container/b -> Container/a [E_MANIFEST_DEPENDENCY]']);
});
