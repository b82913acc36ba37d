import t from 'tap';
import { buildBundle } from '../../agent/manifest/bundle.js';
import { formatError } from '../../agent/errors.js';
import { decodeManifest } from '../../agent/manifest/text.js';

const REV = 'a'.repeat(40);
const head = (kind: string, name: string) => `apiVersion: steward/v1\nkind: ${kind}\nmetadata: { name: ${name} }\n`;

/** Each malformed manifest and the exact lines a user sees (file:line: pointer: message [CODE]). */
const malformed: Array<[string, string, string[]]> = [
  [
    'syntax error',
    'apiVersion: steward/v1\nkind: [Container\n',
    [
      'hosts/a/m.yaml:2: Flow sequence in block collection must be sufficiently indented and end with a ] [E_MANIFEST_PARSE]',
    ],
  ],
  ['duplicate key', 'kind: Container\nkind: File\n', ['hosts/a/m.yaml:2: Map keys must be unique [E_MANIFEST_PARSE]']],
  [
    'not a mapping',
    '- just\n- a list\n',
    ['hosts/a/m.yaml:1: /: a document must be a mapping with apiVersion, kind, metadata and spec [E_MANIFEST_INVALID]'],
  ],
  [
    'unknown kind',
    head('Gadget', 'w') + 'spec: {}\n',
    ['hosts/a/m.yaml:2: /kind: unknown kind "Gadget"; expected one of Container, File, Service [E_MANIFEST_INVALID]'],
  ],
  [
    'missing kind',
    'apiVersion: steward/v1\nmetadata: { name: w }\n',
    ['hosts/a/m.yaml:1: /kind: missing required field "kind" [E_MANIFEST_INVALID]'],
  ],
  [
    'wrong apiVersion',
    'apiVersion: steward/v2\nkind: Container\nmetadata: { name: w }\nspec: { image: x }\n',
    ['hosts/a/m.yaml:1: /apiVersion: must be "steward/v1" [E_MANIFEST_INVALID]'],
  ],
  [
    'missing image',
    head('Container', 'web') + 'spec:\n  command: [sh]\n',
    ['hosts/a/m.yaml:5: /spec/image: missing required field "image" [E_MANIFEST_INVALID]'],
  ],
  [
    'bad name',
    head('Container', 'Web_1') + 'spec: { image: x }\n',
    [
      "hosts/a/m.yaml:3: /metadata/name: does not match the expected form (Resource name: lower-case letters, digits, '-' and '.', starting with a letter or digit.) [E_MANIFEST_INVALID]",
    ],
  ],
  [
    'unknown field',
    head('Container', 'web') + 'spec:\n  image: x\n  imagePullPolicy: Always\n',
    ['hosts/a/m.yaml:6: /spec/imagePullPolicy: unknown field "imagePullPolicy" [E_MANIFEST_INVALID]'],
  ],
  [
    'env number',
    head('Container', 'web') + 'spec:\n  image: x\n  env:\n    PORT: 8080\n',
    ['hosts/a/m.yaml:7: /spec/env/PORT: must be a string [E_MANIFEST_INVALID]'],
  ],
  [
    'bad port',
    head('Container', 'web') + 'spec:\n  image: x\n  ports: ["80:80", "eighty"]\n',
    [
      'hosts/a/m.yaml:6: /spec/ports/1: does not match the expected form ([hostIp:][hostPort:]containerPort[/proto], e.g. "8080:80" or "127.0.0.1:53:53/udp".) [E_MANIFEST_INVALID]',
    ],
  ],
  [
    'bad restart',
    head('Container', 'web') + 'spec:\n  image: x\n  restart: sometimes\n',
    [
      'hosts/a/m.yaml:6: /spec/restart: must be one of: "no", "always", "unless-stopped", "on-failure" [E_MANIFEST_INVALID]',
    ],
  ],
  [
    'reserved label',
    head('Container', 'web') + 'spec:\n  image: x\n  labels:\n    steward.id: mine\n',
    [
      'hosts/a/m.yaml:7: /spec/labels/steward.id: key "steward.id" is not allowed (Container labels; the steward.* prefix is reserved.) [E_MANIFEST_INVALID]',
    ],
  ],
  [
    'healthcheck test type',
    head('Container', 'web') + 'spec:\n  image: x\n  healthcheck: { test: 5 }\n',
    ['hosts/a/m.yaml:6: /spec/healthcheck/test: must be one of these types: array, string [E_MANIFEST_INVALID]'],
  ],
  [
    'file both content and source',
    head('File', 'cfg') + 'spec: { path: /etc/kiosk/a, content: x, source: y }\n',
    ['hosts/a/m.yaml:4: /spec: cannot have both "content" and "source"; keep exactly one [E_MANIFEST_INVALID]'],
  ],
  [
    'file neither',
    head('File', 'cfg') + 'spec: { path: /etc/kiosk/a }\n',
    ['hosts/a/m.yaml:4: /spec: needs exactly one of "content" or "source" [E_MANIFEST_INVALID]'],
  ],
  [
    'file relative path',
    head('File', 'cfg') + 'spec: { path: etc/kiosk/a, content: x }\n',
    [
      'hosts/a/m.yaml:4: /spec/path: does not match the expected form (Absolute path below a configured root.) [E_MANIFEST_INVALID]',
    ],
  ],
  [
    'service unit',
    head('Service', 'kiosk') + 'spec: { unit: kiosk }\n',
    [
      'hosts/a/m.yaml:4: /spec/unit: does not match the expected form (A systemd unit name with its type, e.g. kiosk.service or backup.timer.) [E_MANIFEST_INVALID]',
    ],
  ],
  [
    'unknown dependency',
    head('Container', 'web') + 'spec:\n  image: x\n  dependsOn: [File/nope]\n',
    [
      "hosts/a/m.yaml:6: /spec/dependsOn/0: dependsOn names File/nope, which is not in this host's bundle [E_MANIFEST_DEPENDENCY]",
    ],
  ],
  [
    'bad dependency id',
    head('Container', 'web') + 'spec:\n  image: x\n  restartOn: [Pod/x]\n',
    [
      'hosts/a/m.yaml:6: /spec/restartOn/0: does not match the expected form (A resource id, Kind/name, e.g. Container/web (Kind is Container, File or Service).) [E_MANIFEST_INVALID]',
    ],
  ],
  [
    'alias bomb',
    'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n',
    ['hosts/a/m.yaml:2: too many alias expansions (more than 100): a YAML alias bomb is refused [E_MANIFEST_PARSE]'],
  ],
  [
    'unresolved alias',
    head('Container', 'web') + 'spec:\n  image: *nope\n',
    ['hosts/a/m.yaml:5: alias *nope names no anchor set before it in this document [E_MANIFEST_PARSE]'],
  ],
  [
    'alias into another document',
    head('Container', 'web') + 'spec: &s { image: x }\n---\n' + head('Container', 'db') + 'spec:\n  <<: *s\n',
    ['hosts/a/m.yaml:10: alias *s names no anchor set before it in this document [E_MANIFEST_PARSE]'],
  ],
  [
    'circular alias',
    head('Container', 'web') + 'spec:\n  image: x\n  command: &c [sh, *c]\n',
    ['hosts/a/m.yaml:6: alias *c is inside the value it names: a circular value is refused [E_MANIFEST_PARSE]'],
  ],
  [
    'collection as a key',
    head('Container', 'web') + 'spec:\n  ? [a, b]\n  : x\n',
    ['hosts/a/m.yaml:5: a mapping key must be a plain value, not a list or a mapping [E_MANIFEST_PARSE]'],
  ],
  [
    'nested too deeply',
    'a: ' + '['.repeat(20000) + ']'.repeat(20000) + '\n',
    ['hosts/a/m.yaml:1: nested too deeply [E_MANIFEST_PARSE]'],
  ],
  [
    'bad env key',
    head('Container', 'web') + 'spec:\n  image: x\n  env:\n    "A=B": "1"\n',
    [
      `hosts/a/m.yaml:7: /spec/env/A=B: key "A=B" is not allowed (Variable names: letters, digits and '_', not starting with a digit.) [E_MANIFEST_INVALID]`,
    ],
  ],
  [
    'NUL in a path',
    head('File', 'cfg') + 'spec: { path: "/etc/kiosk/a\\0b", content: x }\n',
    ['hosts/a/m.yaml:4: /spec/path: must not contain a NUL byte [E_MANIFEST_INVALID]'],
  ],
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
  t.same(errors.map(formatError), [
    'hosts/a/web.yml:2: /metadata/name: Container/web is declared twice: groups/kiosk/web.yaml:1 and hosts/a/web.yml:2 [E_MANIFEST_DUPLICATE]',
  ]);
});

t.test('multi-document YAML and JSON make one bundle in dependency order', async (t) => {
  const yaml = [
    head('Container', 'web') + 'spec:\n  image: local/busybox:1\n  dependsOn: [Container/db]\n',
    head('Container', 'db') + 'spec: { image: local/busybox:1 }\n',
    '', // an empty document is skipped
  ].join('---\n');
  const json = JSON.stringify({
    apiVersion: 'steward/v1',
    kind: 'Container',
    metadata: { name: 'cache' },
    spec: { image: 'x', dependsOn: ['Container/web'] },
  });
  const { bundle, errors } = buildBundle(REV, [
    { path: 'hosts/a/app.yaml', text: yaml },
    { path: 'hosts/a/cache.json', text: json },
  ]);
  t.same(errors, []);
  t.same(
    bundle?.resources.map((r) => `${r.id}@${r.file}:${r.line}`),
    ['Container/db@hosts/a/app.yaml:8', 'Container/web@hosts/a/app.yaml:1', 'Container/cache@hosts/a/cache.json:1'],
  );
});

t.test('a dependency cycle names its ids', async (t) => {
  const a = head('Container', 'a') + 'spec: { image: x, dependsOn: [Container/b] }\n';
  const b = head('Container', 'b') + 'spec: { image: x, restartOn: [Container/a] }\n';
  const { errors } = buildBundle(REV, [{ path: 'c.yaml', text: `${a}---\n${b}` }]);
  t.same(errors.map(formatError), [
    'c.yaml:1: dependency cycle: Container/a -> Container/b -> Container/a [E_MANIFEST_DEPENDENCY]',
  ]);
});

// 20,000 links: the recursive check overflowed the stack at about 10,000 (yaml parses ~4,000 documents a second).
t.test('a 20,000-link dependsOn chain is ordered, and a cycle at its end is found, without recursion', async (t) => {
  const n = 20_000;
  const doc = (i: number, dep: number | undefined) =>
    `${head('File', `f${i}`)}spec: { path: /etc/kiosk/f${i}, content: x${dep === undefined ? '' : `, dependsOn: [File/f${dep}]`} }\n`;
  const files = Array.from({ length: 50 }, (_, k) => ({
    path: `hosts/a/c${k}.yaml`,
    text: Array.from({ length: n / 50 }, (_, j) => k * (n / 50) + j)
      .map((i) => doc(i, i + 1 < n ? i + 1 : undefined))
      .join('---\n'),
  }));
  const ok = buildBundle(REV, files);
  t.same(ok.errors, []);
  t.equal(ok.bundle?.resources[0]?.id, `File/f${n - 1}`, 'the end of the chain comes first');
  t.equal(ok.bundle?.resources[n - 1]?.id, 'File/f0');
  const last = files[49]!;
  last.text = last.text.replace(new RegExp(`content: x }\\n$`), 'content: x, dependsOn: [File/f0] }\n');
  const cyc = buildBundle(REV, files);
  t.equal(cyc.bundle, undefined);
  t.same(cyc.errors.map(formatError), [
    'hosts/a/c0.yaml:1: dependency cycle: File/f0 -> File/f1 -> File/f2 -> File/f3 -> File/f4 -> File/f5 -> File/f6 -> File/f7 -> … 19990 more … -> File/f19998 -> File/f19999 -> File/f0 [E_MANIFEST_DEPENDENCY]',
  ]);
});

t.test('manifest bytes: UTF-8 or an error with the line; over 1 MiB refused', async (t) => {
  const decoded = (b: Buffer) => {
    const r = decodeManifest('hosts/a/m.yaml', b);
    return 'error' in r ? formatError(r.error) : r.text;
  };
  t.equal(decoded(Buffer.from('kind: Fileé\n')), 'kind: Fileé\n');
  t.equal(decoded(Buffer.from('\ufeffkind: File\n')), 'kind: File\n', 'a byte order mark is dropped');
  t.equal(
    decoded(Buffer.concat([Buffer.from('a: 1\nb: "'), Buffer.from([0xff, 0xfe]), Buffer.from('"\n')])),
    'hosts/a/m.yaml:2: not valid UTF-8 (byte 9); manifests are UTF-8 text, put binary content in a file named by "source" [E_MANIFEST_PARSE]',
  );
  t.equal(
    decoded(Buffer.concat([Buffer.from('x\n\n'), Buffer.from([0xe2, 0x28, 0xa1])])),
    'hosts/a/m.yaml:3: not valid UTF-8 (byte 3); manifests are UTF-8 text, put binary content in a file named by "source" [E_MANIFEST_PARSE]',
    'a truncated sequence',
  );
  t.equal(
    decoded(Buffer.alloc(1024 * 1024 + 1, 0x61)),
    'hosts/a/m.yaml: file is larger than 1048576 bytes (1048577) [E_MANIFEST_PARSE]',
  );
});
