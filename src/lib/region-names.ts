// Any thread, cold path. What a refusal of an unknown region name says is
// expected: region names are case-sensitive (the config refuses two that
// differ only in case), so a name from an agent, the API or the bus that
// matches a configured one but for case names that spelling.

/**
 * Returns the "expected …" part of the refusal of region `name`, which is not
 * one of `names`: the configured spelling when `name` differs from one only in
 * case, else the first ten of `names` (and how many there are). Never throws.
 */
export function expectedRegion(name: string, names: Iterable<string>): string {
  const all = [...names];
  const lower = name.toLowerCase();
  // At most one matches: the config refuses region names that differ only in case.
  const spelt = all.find((n) => n.toLowerCase() === lower);
  if (spelt !== undefined) return `region names are case-sensitive, expected ${JSON.stringify(spelt)}`;
  return `expected one of: ${shortList(all) || '(none)'}`;
}

/** The first ten of a list, and how many there are in all (for messages that name what was expected). */
export function shortList(items: readonly string[]): string {
  return items.slice(0, 10).join(', ') + (items.length > 10 ? `, … (${items.length} in all)` : '');
}
