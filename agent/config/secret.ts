import { inspect } from 'node:util';

/**
 * A credential read from a file. It prints as [redacted] everywhere (String(), JSON, util.inspect,
 * pino), so handing one to a logger or a status document by mistake leaks nothing. `reveal()`
 * is the one way to the value, used only where a request header is built.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return '[redacted]';
  }
}
