// Errors the operator can act on from opening the database, apart from the modules that raise them, so
// that the CLI can recognise them (one line, no stack) without loading the database drivers.

/** The database could not be reached at start: main.ts exits with EXIT_DATABASE_UNREACHABLE. */
export class DatabaseUnreachable extends Error {}

/** The embedded PostgreSQL cannot be used: its data dir is in use, unreachable, or the server would not start. */
export class EmbeddedDatabaseError extends Error {}
