/**
 * Card expiry dates for fixtures, computed from the clock: a fixed year such as 2030 would turn every test
 * that goes through the expiry check into a failure the month after it passes.
 */
export interface TestExpiry {
  /** 1-12 */
  month: number;
  /** four digits */
  year: number;
  /** Knot's `MM/YYYY` */
  mmYyyy: string;
  /** the first instant (UTC) at which a card with this expiry is expired */
  expiredFrom: Date;
}

/** The expiry month `monthsAhead` calendar months after `now`'s month (UTC); negative for a past one. */
export function expiryFromNow(monthsAhead = 12, now = new Date()): TestExpiry {
  const months = now.getUTCFullYear() * 12 + now.getUTCMonth() + monthsAhead;
  const year = Math.floor(months / 12);
  const month = (months % 12) + 1;
  return {
    month,
    year,
    mmYyyy: `${String(month).padStart(2, "0")}/${year}`,
    expiredFrom: new Date(Date.UTC(year, month, 1)),
  };
}
