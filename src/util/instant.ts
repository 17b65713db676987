/**
 * Instants as people read them: ISO 8601 in a time zone with its offset (`2026-05-01T16:03:07+02:00`),
 * or with `Z` in UTC, never a wall-clock time without its zone. Shared by the CLI and the console.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Throws a RangeError for a zone that is not an IANA name the runtime knows. */
function formatterFor(timeZone: string | undefined, milliseconds: boolean): Intl.DateTimeFormat {
  const key = `${timeZone ?? ""}|${milliseconds}`;
  let formatter = formatters.get(key);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
      ...(milliseconds && { fractionalSecondDigits: 3 }),
      timeZoneName: "longOffset",
    });
    formatters.set(key, formatter);
  }
  return formatter;
}

/** The zone's resolved IANA name (`UTC` for `Etc/UTC`), or a RangeError naming the zone. */
export function checkedTimeZone(timeZone: string): string {
  return formatterFor(timeZone, false).resolvedOptions().timeZone;
}

/**
 * `instant` in `timeZone` (an IANA name; undefined: the runtime's own zone, i.e. the browser's or $TZ),
 * to the second, or to the millisecond with `milliseconds`.
 */
export function isoInZone(instant: string | Date, timeZone?: string, options: { milliseconds?: boolean } = {}): string {
  const formatter = formatterFor(timeZone, options.milliseconds ?? false);
  const part: Partial<Record<Intl.DateTimeFormatPartTypes, string>> = {};
  for (const { type, value } of formatter.formatToParts(new Date(instant))) part[type] = value;
  const fraction = part.fractionalSecond === undefined ? "" : `.${part.fractionalSecond}`;
  // "GMT+05:30", "GMT-03:00"; zero as "GMT" or "GMT+00:00" depending on the runtime.
  const offset = (part.timeZoneName ?? "GMT").replace(/^GMT/, "") || "+00:00";
  const zone = formatter.resolvedOptions().timeZone === "UTC" ? "Z" : offset;
  return `${part.year}-${part.month}-${part.day}T${part.hour}:${part.minute}:${part.second}${fraction}${zone}`;
}
