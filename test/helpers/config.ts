import { parseConfig } from '../../agent/config/load.js';
import { formatError, StewardErrors } from '../../agent/errors.js';

/** The errors loading `text` as the config file `file` gives, as the CLI prints them (none: []). */
export function configErrors(text: string, file: string): string[] {
  try {
    parseConfig(text, file, { hostname: 'box-1' });
  } catch (err) {
    if (err instanceof StewardErrors) return err.errors.map(formatError);
    throw err;
  }
  return [];
}
