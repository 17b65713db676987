/**
 * Name globs for operation rules (`volumeDelete`, `*Delete`, `backup*`, `eth_*`): `*` stands for any run
 * of characters, including none; everything else is literal and case-sensitive, as the names are
 * upstream. Matched without regular expressions, so no pattern can be slow.
 */
export function globMatches(pattern: string, name: string): boolean {
  const parts = pattern.split("*");
  if (parts.length === 1) return pattern === name;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (name.length < first.length + last.length || !name.startsWith(first) || !name.endsWith(last)) return false;
  // Each middle part taken at its leftmost place leaves the most room for the rest.
  let from = first.length;
  const end = name.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const at = name.indexOf(middle, from);
    if (at === -1 || at + middle.length > end) return false;
    from = at + middle.length;
  }
  return true;
}
