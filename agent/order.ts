/**
 * Orders strings by UTF-16 code unit, as JSON, Git and `sort` in the C locale do: the same on
 * every host whatever its locale, and without ICU's collation tables (localeCompare maps
 * ~2.6 MiB of them into every process that calls it; bench/README.md, issue 15).
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
