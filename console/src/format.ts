/** Presentation helpers shared by the views. */
import { isoInZone } from "../../src/util/instant";

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["day", 86_400_000],
  ["hour", 3_600_000],
  ["minute", 60_000],
  ["second", 1_000],
];

/** "3 minutes ago", "in 12 minutes". */
export function fromNow(iso: string, now = Date.now()): string {
  const delta = Date.parse(iso) - now;
  for (const [unit, ms] of UNITS) {
    if (Math.abs(delta) >= ms || unit === "second") return relative.format(Math.round(delta / ms), unit);
  }
  return "";
}

/** A countdown: "14:05", "1:02:03"; "expired" once past. */
export function timeLeft(iso: string, now = Date.now()): string {
  const seconds = Math.floor((Date.parse(iso) - now) / 1000);
  if (seconds <= 0) return "expired";
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor((seconds % 3600) / 60), seconds % 60];
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** An instant in the browser's time zone, with its offset (`2026-05-01T16:03:07+02:00`): never a time without its zone. */
export const formatDateTime = (iso: string) => isoInZone(iso);

/** The same instant in UTC to the millisecond, as the broker records it: for a title beside formatDateTime. */
export const utcDateTime = (iso: string) => isoInZone(iso, "UTC", { milliseconds: true });

export const formatDuration = (seconds: number) =>
  seconds % 3600 === 0 ? `${seconds / 3600} h` : seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;

/** Long ids (uuids, jtis) shortened for tables; the full value goes in a title. */
export const shortId = (id: string) => (id.length > 12 ? `${id.slice(0, 8)}…` : id);
