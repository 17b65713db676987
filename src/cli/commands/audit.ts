import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { operationsSummary, recordedNames, visibleText } from "../../audit/event-text.js";
import { checkedTimeZone, isoInZone } from "../../util/instant.js";
import { CliError, type AdminApi } from "../connection.js";
import { contextOf, examples } from "../context.js";
import { emit, fields, paint, table, type Output } from "../output.js";

type AuditEvent = {
  id: string;
  at: string;
  kind: string;
  actor: string;
  decision: string | null;
  agentId: string | null;
  grantId: string | null;
  method: string | null;
  upstream: string | null;
  path: string | null;
  status: number | null;
  reason: string | null;
  details: Record<string, unknown> | null;
};

/** `GET /v1/audit/verify`'s answer (src/audit/verify.ts). */
type Verification = {
  ok: boolean;
  checkedEvents: number;
  /** The first link that does not verify, walking from the oldest checkpoint to the newest event. */
  firstBroken: { at: "event" | "checkpoint"; id: string | number; reason: string } | null;
  /** Proxy events recorded twice (src/audit/verify.ts); absent from brokers before it was counted. */
  duplicates?: number;
  head: { id: string; hash: string } | null;
} & Record<string, unknown>;

/** The audit filters, as options: `--agent-id x` → `agentId=x`. */
const FILTERS = [
  ["--agent-id <id>", "agentId"],
  ["--grant-id <id>", "grantId"],
  ["--agent-name <name>", "agentName", "the agent's name as the events recorded it (a deleted agent's too)"],
  ["--grant-name <name>", "grantName", "the grant's name as the events recorded it, under the name it had then"],
  ["--jti <jti>", "jti"],
  ["--upstream <name>", "upstream"],
  ["--environment <name>", "environment"],
  ["--decision <allow|deny>", "decision"],
  ["--method <method>", "method"],
  ["--path-prefix <path>", "pathPrefix"],
  ["--kind <kind>", "kind"],
  ["--reason <code>", "reason", "a refusal code (docs/errors.md): the calls refused for it"],
  ["--since <iso-time>", "since"],
  ["--until <iso-time>", "until"],
] as const;

function withFilters(command: Command): Command {
  for (const [flags, , description] of FILTERS) command.option(flags, description);
  return command;
}

/** For the commands that print events as a table or lines. */
function withTimeZone(command: Command): Command {
  return command.option("--tz <zone>", "show times in this IANA time zone, with its offset (default: $TZ if set, else UTC)");
}

/** The zone times are shown in: --tz, else $TZ, else UTC; an unknown zone is refused before anything is asked. */
function timeZoneOf(option: string | undefined): string {
  const zone = option ?? (process.env.TZ || "UTC");
  try {
    return checkedTimeZone(zone);
  } catch {
    throw new CliError(`unknown time zone ${JSON.stringify(zone)}: an IANA name such as UTC, Europe/Paris or America/New_York`);
  }
}

const filtersOf = (options: Record<string, string | undefined>) =>
  Object.fromEntries(FILTERS.map(([, name]) => [name, options[name]]).filter(([, value]) => value !== undefined));

const COLUMNS = ["id", "at", "kind", "decision", "actor", "agent", "grant", "method", "upstream", "path", "operations", "status", "reason"] as const;

/**
 * An event as a person reads it: its time in `timeZone` with the offset, the agent and grant by the names
 * they had then (their ids when the event recorded none), the operations it ran.
 */
function readable(event: AuditEvent, timeZone: string): Record<(typeof COLUMNS)[number], string> {
  const names = recordedNames(event.details);
  // Shown with bidi and zero-width characters escaped (visibleText): an agent's text must not rearrange the line.
  const text = (value: string | number | null | undefined) => (value === null || value === undefined ? "" : visibleText(String(value)));
  return {
    id: event.id,
    at: isoInZone(event.at, timeZone, { milliseconds: true }),
    kind: event.kind,
    decision: text(event.decision),
    actor: text(event.actor),
    agent: text(names.agent ?? event.agentId),
    grant: text(names.grant ?? event.grantId),
    method: text(event.method),
    upstream: text(event.upstream),
    path: text(event.path),
    operations: text(operationsSummary(event.details).join(", ")),
    status: text(event.status),
    reason: text(event.reason),
  };
}

/** One event as a line: for tail, which prints as events arrive (JSON Lines with --json). */
function eventLine(out: Output, event: AuditEvent, timeZone: string): string {
  if (out.json) return JSON.stringify(event);
  const row = readable(event, timeZone);
  if (!out.tty) return COLUMNS.map((c) => row[c]).join("\t");
  const decision = event.decision === "deny" ? paint(out, "red", "deny ") : event.decision === "allow" ? paint(out, "green", "allow") : "     ";
  const named = [row.agent && `agent ${row.agent}`, row.grant && `grant ${row.grant}`].filter(Boolean).join(" ");
  return [paint(out, "dim", row.at), row.kind.padEnd(18), decision, row.actor, named, row.method, row.upstream, row.path, row.operations, row.status, row.reason]
    .filter((cell) => cell !== "")
    .join("  ");
}

/** New events after `afterId`, oldest first, from the export stream. */
async function eventsAfter(api: AdminApi, filters: object, afterId: string): Promise<AuditEvent[]> {
  const response = await api.send("/v1/audit/export", { ...filters, afterId });
  return (await response.text()).split("\n").filter(Boolean).map((line) => JSON.parse(line) as AuditEvent);
}

export function auditCommands(program: Command): void {
  const audit = program.command("audit").description("the audit log: every decision, issuance, revocation and admin change");

  withTimeZone(withFilters(audit.command("tail")))
    .description("the latest events, oldest first; --follow keeps printing new ones")
    .option("-n, --lines <n>", "how many", "20")
    .option("-f, --follow", "wait for new events")
    .option("--interval <ms>", "how often to look for new events with --follow", "2000")
    .addHelpText("after", examples("keyward audit tail -n 50", "keyward audit tail -f --decision deny", "keyward audit tail -f --json | jq .", "keyward audit tail --tz Europe/Paris"))
    .action(async (options: Record<string, string | undefined> & { follow?: boolean }, command: Command) => {
      const { out, admin } = contextOf(command);
      const timeZone = timeZoneOf(options.tz);
      const api = admin();
      const filters = filtersOf(options);
      const count = Number(options.lines);
      // At least one, to learn where the log ends (-n 0 --follow prints only what comes).
      const { events } = await api.json<{ events: AuditEvent[] }>("GET", "/v1/audit", { query: { ...filters, limit: Math.max(1, count) } });
      let last = events[0]?.id ?? "0";
      for (const event of events.slice(0, count).reverse()) process.stdout.write(eventLine(out, event, timeZone) + "\n");
      while (options.follow) {
        await new Promise((resolve) => setTimeout(resolve, Number(options.interval)));
        for (const event of await eventsAfter(api, filters, last)) {
          process.stdout.write(eventLine(out, event, timeZone) + "\n");
          last = event.id;
        }
      }
    });

  withTimeZone(withFilters(audit.command("search")))
    .description("events matching the filters, newest first, a page at a time")
    .option("--limit <n>", "events per page (at most 500)", "100")
    .option("--cursor <id>", "the next page: the cursor the previous page gave")
    .addHelpText("after", examples("keyward audit search --agent-id 0b6c… --decision deny --since 2026-05-01T00:00:00Z", "keyward audit search --upstream hosting-staging --path-prefix /v1/volumes --json", "keyward audit search --reason budget_exceeded --since 2026-05-01T00:00:00Z"))
    .action(async (options: Record<string, string | undefined>, command: Command) => {
      const { out, admin } = contextOf(command);
      const timeZone = timeZoneOf(options.tz);
      const page = await admin().json<{ events: AuditEvent[]; nextCursor: string | null }>("GET", "/v1/audit", {
        query: { ...filtersOf(options), limit: options.limit, cursor: options.cursor },
      });
      const rows = page.events.map((event) => readable(event, timeZone));
      emit(out, page, () => table(out, rows, COLUMNS) + (page.nextCursor ? `\n${paint(out, "dim", `more: --cursor ${page.nextCursor}`)}` : ""));
    });

  audit
    .command("verify")
    .description("re-walk the hash chain and count duplicated events; exits 1 if it is broken or has any")
    .addHelpText("after", examples("keyward audit verify", "keyward audit verify --json > verified-$(date +%F).json"))
    .action(async (_options, command: Command) => {
      const { out, admin } = contextOf(command);
      const result = await admin().json<Verification>("GET", "/v1/audit/verify");
      emit(out, result, () => {
        const duplicates = result.duplicates ?? 0;
        if (result.ok && duplicates > 0) {
          return `${paint(out, "red", "AUDIT EVENTS DUPLICATED")}: the chain is intact (${result.checkedEvents} events checked), but ${duplicates} proxy calls have an event recorded twice`;
        }
        if (result.ok) {
          return `${paint(out, "green", "audit chain intact")}: ${result.checkedEvents} events checked, duplicates: 0; head ${result.head?.id ?? "-"} ${result.head?.hash ?? ""}`;
        }
        // The broken link first, on a line of its own; then what was checked before it.
        const { ok: _ok, firstBroken, ...rest } = result;
        const link = firstBroken ? `${firstBroken.at} ${firstBroken.id}: ${firstBroken.reason}` : "-";
        return `${paint(out, "red", "AUDIT CHAIN BROKEN")}\nfirst broken link: ${link}\n${fields(out, rest)}`;
      });
      if (!result.ok || (result.duplicates ?? 0) > 0) process.exitCode = 1;
    });

  withFilters(audit.command("export"))
    .description("matching events as JSON Lines, oldest first, with their hashes (for a SIEM)")
    .option("--after-id <id>", "resume after the last event you have")
    .option("-o, --out <file>", "write to this file (created 0600; an existing one is refused) instead of stdout")
    .addHelpText("after", examples("keyward audit export --since 2026-05-01T00:00:00Z -o audit.jsonl", "keyward audit export --after-id 41871 >> audit.jsonl"))
    .action(async (options: Record<string, string | undefined>, command: Command) => {
      const { admin } = contextOf(command);
      // The audit log is for read_audit keys only: its file is the user's alone (whatever the umask), and never
      // one that was there before (a file or a symlink another local user put there to read it), as backup's.
      const file = options.out ? createWriteStream(options.out, { mode: 0o600, flags: "wx" }) : undefined;
      if (file) await once(file, "open");
      const exported = async () => {
        const response = await admin().send("/v1/audit/export", { ...filtersOf(options), afterId: options.afterId });
        await pipeline(Readable.fromWeb(response.body as WebReadableStream), file ?? process.stdout, { end: file !== undefined });
      };
      if (!file) return exported();
      // An export that failed (a refused key, a broken connection) leaves no file that a retry would find in its way.
      await exported().catch(async (err: unknown) => {
        file.destroy();
        await rm(options.out!, { force: true });
        throw err;
      });
    });
}
