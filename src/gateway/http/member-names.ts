/**
 * The shape of a partner body without its values: what is kept of a delivery we do not act on, so an
 * operator can see which members a partner sent (a renamed field, a new envelope) while storage holds no
 * ciphertext, id or personal data from it. Two levels deep; a name that does not look like an
 * identifier (it might be data used as a key, e.g. a card number) is withheld and only counted.
 */
const NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const MAX_NAMES = 64;

export function memberNames(body: unknown): string {
  const names: string[] = [];
  let withheld = 0;
  const visit = (value: unknown, prefix: string, depth: number) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return;
    for (const [key, child] of Object.entries(value)) {
      if (!NAME.test(key)) {
        withheld++;
        continue;
      }
      if (names.length < MAX_NAMES) names.push(prefix + key);
      if (depth < 2) visit(child, `${prefix}${key}.`, depth + 1);
    }
  };
  visit(body, "", 1);
  return withheld > 0 ? `${names.join(",")} (+${withheld} withheld)` : names.join(",");
}
