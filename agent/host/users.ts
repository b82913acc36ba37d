import { readFile } from '../files.js';

/** User and group names of this host, read from /etc/passwd and /etc/group (no NSS, no shell). */
export interface Accounts {
  uid(name: string): number | undefined;
  gid(name: string): number | undefined;
}

export async function readAccounts(root = '/etc'): Promise<Accounts> {
  const table = async (file: string) => {
    const map = new Map<string, number>();
    const text = await readFile(`${root}/${file}`, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id && /^\d+$/.test(id)) map.set(name, Number(id));
    }
    return map;
  };
  const [users, groups] = await Promise.all([table('passwd'), table('group')]);
  const lookup = (map: Map<string, number>) => (name: string) => (/^\d+$/.test(name) ? Number(name) : map.get(name));
  return { uid: lookup(users), gid: lookup(groups) };
}
