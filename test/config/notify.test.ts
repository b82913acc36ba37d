import t from 'tap';
import { parseConfig } from '../../agent/config/load.js';
import { configErrors } from '../helpers/config.js';

const F = '/etc/steward/agent.yaml';
const config = (notify: string) => `source:\n  url: http://git.example/fleet.git\nnotify: ${notify}\n`;

t.test('notify: defaults, and errors naming the receiver and field', async (t) => {
  const ok = parseConfig(config('[{ url: "https://ntfy.example.com/fleet" }]'), F, { hostname: 'box-1' });
  t.same(ok.notify, [
    {
      url: 'https://ntfy.example.com/fleet',
      format: 'json',
      events: ['phaseChanged', 'rolledBack', 'revisionRefused', 'rolloutHalted'],
    },
  ]);
  t.same(parseConfig('source:\n  url: http://git.example/fleet.git\n', F, { hostname: 'box-1' }).notify, []);
  t.match(configErrors(config('[{ url: "ftp://x/y" }]'), F), [/^\/etc\/steward\/agent\.yaml:3: \/notify\/0\/url: /]);
  t.match(configErrors(config('[{ url: "https://x/y", events: [phase] }]'), F), [/\/notify\/0\/events\/0: /]);
  t.match(configErrors(config('[{ url: "https://x/y", format: teams }]'), F), [/\/notify\/0\/format: /]);
  t.match(configErrors(config('[{ url: "https://x/y", tokenFile: token }]'), F), [/\/notify\/0\/tokenFile: /]);
  const eleven = `[${Array.from({ length: 11 }, (_, i) => `{ url: "https://x/${i}" }`).join(', ')}]`;
  t.same(configErrors(config(eleven), F), [`${F}:3: /notify: at most 10 receivers [E_CONFIG_INVALID]`]);
});
