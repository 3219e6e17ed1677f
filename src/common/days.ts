/**
 * How long until a certificate ends, counted one way wherever pgprov says it (check's findings, the
 * CA's renewal, a server certificate's verdict): whole days left, rounded down.
 */
export const DAY_MS = 86_400_000;

/** Whole days from `now` to `end`, rounded down (negative once it has passed). */
export function daysLeft(end: Date, now: Date): number {
  return Math.floor((end.getTime() - now.getTime()) / DAY_MS);
}

/** "expires on 2026-01-11, in 9 days", or "expired on 2025-12-31" once `end` has passed. */
export function endText(end: Date, now: Date): string {
  const date = end.toISOString().slice(0, 10);
  if (end.getTime() <= now.getTime()) return `expired on ${date}`;
  const days = daysLeft(end, now);
  return `expires on ${date}, in ${days} day${days === 1 ? "" : "s"}`;
}
