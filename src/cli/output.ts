import { styleText } from "node:util";
import { storable } from "../audit/audit.js";
import { visibleText } from "../audit/event-text.js";

/**
 * How results are shown. `--json`: the API's answer as JSON, for scripts. Otherwise tables and fields;
 * on a terminal aligned and coloured (unless NO_COLOR), elsewhere (a pipe, a file) tab-separated and
 * plain, so `cut` and `awk` work on them.
 */
export type Output = { json: boolean; tty: boolean; color: boolean };

export function outputFor(json: boolean, env: NodeJS.ProcessEnv = process.env, tty = process.stdout.isTTY === true): Output {
  // no-color.org: NO_COLOR set to anything but the empty string turns colour off.
  return { json, tty, color: tty && !json && !env.NO_COLOR && env.TERM !== "dumb" };
}

type Style = Parameters<typeof styleText>[0];
/**
 * `out.color` alone decides: styleText would otherwise check process.stdout again (recent Node releases do),
 * leaving uncoloured a note on a terminal's stderr while stdout is piped.
 */
export const paint = (out: Output, style: Style, text: string) => (out.color ? styleText(style, text, { validateStream: false }) : text);

/**
 * Text from the API as a terminal should show it: controls (C0, DEL and C1: ESC and its one-byte form
 * U+009B start the sequences a terminal obeys), lone UTF-16 halves and bidi or zero-width characters as
 * visible `\uXXXX`, as events store and show them (storable, visibleText). A reason, a description or a
 * note is free text that the person at this terminal did not write (a `security` key engages the kill
 * switch, an admin reads `kill-switch status`): an OSC sequence in it would set the clipboard, the window
 * title or a link, a CSI one clear or rewrite the screen.
 */
export const terminalText = (text: string): string => visibleText(storable(text));

function cell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map(cell).join(",");
  if (typeof value === "object") return terminalText(JSON.stringify(value));
  return terminalText(String(value));
}

/** Rows as a table of the given columns (header included). */
export function table(out: Output, rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const cells = rows.map((row) => columns.map((c) => cell(row[c])));
  if (!out.tty) return [columns, ...cells].map((line) => line.join("\t")).join("\n");
  if (rows.length === 0) return paint(out, "dim", "(none)");
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((line) => line[i]!.length)));
  const pad = (line: string[]) => line.map((text, i) => text.padEnd(widths[i]!)).join("  ").trimEnd();
  return [paint(out, "bold", pad(columns.map((c) => c.toUpperCase()))), ...cells.map(pad)].join("\n");
}

/** One object as `name: value` lines. */
export function fields(out: Output, value: Record<string, unknown>, names: readonly string[] = Object.keys(value)): string {
  const width = Math.max(...names.map((n) => n.length));
  return names.map((name) => `${paint(out, "dim", `${name}:`.padEnd(width + 1))} ${cell(value[name])}`).join("\n");
}

/** Writes `data` as JSON with --json, else what `human` makes of it. */
export function emit(out: Output, data: unknown, human: () => string): void {
  process.stdout.write((out.json ? JSON.stringify(data, null, 2) : human()) + "\n");
}

/** A remark for the person at the terminal, on stderr so stdout stays the result. */
export function note(out: Output, text: string, style: Style = "yellow"): void {
  if (!out.json) process.stderr.write(paint({ ...out, color: out.color && process.stderr.isTTY === true }, style, text) + "\n");
}
