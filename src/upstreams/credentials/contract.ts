import type { Dispatcher } from "undici";
import { z } from "zod";
import type { GrantPolicy } from "../../policy/decide.js";

/**
 * The request about to leave for the upstream, after the proxy has decided on it and stripped the
 * agent's credentials. A credential kind edits it in place: it sets headers, and may rewrite the query
 * or re-encode the path without changing what it decodes to. The origin is the upstream's, fixed.
 */
export type OutgoingRequest = {
  readonly method: string;
  url: URL;
  headers: Record<string, string>;
  /** The whole request body when the proxy holds it (always for a credential that `buffersBody`), else undefined: it streams. */
  readonly body: Uint8Array | undefined;
};

/** What the call was allowed under: kinds that mint upstream tokens narrow them to it. */
export type RequestScope = { grant: Pick<GrantPolicy, "methods" | "paths"> };

/** One upstream's credential, compiled once from its stored config and decrypted secret. */
export type UpstreamCredential = {
  /** The proxy reads the whole body (within its size limit) before `prepare`, e.g. so it can be hashed for a signature. */
  readonly buffersBody: boolean;
  /**
   * Request header names this kind sets, asked lower-case with `_` spelt `-` (CGI-style servers read both
   * as one): the agent's own values for them are dropped before `prepare`, in either spelling.
   */
  ownsHeader(name: string): boolean;
  /** Presents the credential on one request. If it cannot, it throws (502) and the request is not sent. */
  prepare(request: OutgoingRequest, scope: RequestScope): Promise<void>;
  /**
   * Every secret value this credential puts (or has put) into calls, and the secrets it was made from:
   * what src/redaction replaces in responses. The same array while nothing changes, so it is compiled
   * once; a kind that mints tokens returns a new one when it mints.
   */
  injectedSecrets(): readonly string[];
  /**
   * Kinds that mint tokens: the upstream answered 401 to `request`, which `prepare` presented. Drops the
   * token it carried so the next call mints another (a token revoked before it expired), within the
   * bounds of TokenCache.dropRejected; returns whether it did. The call itself is never sent again.
   */
  rejected?(request: OutgoingRequest): boolean;
};

/** injectedSecrets() for a credential with fixed secrets plus the tokens a TokenCache minted: one array per set of tokens. */
export function withMintedTokens(fixed: readonly string[], minted: () => readonly string[]): () => readonly string[] {
  let seen: readonly string[] | undefined;
  let combined: readonly string[] = fixed;
  return () => {
    const tokens = minted();
    if (tokens !== seen) {
      seen = tokens;
      combined = Object.freeze([...fixed, ...tokens]);
    }
    return combined;
  };
}

/**
 * What a kind may need besides its config and secret: where the upstream is, how to call out, the clock,
 * and how long a whole exchange with a token endpoint may take.
 */
export type CompileContext = { baseUrl: URL; dispatcher: Dispatcher; now: () => number; tokenDeadlineMs: number };

/** Identity function that ties a kind's config schema, secret schema and compile function to one another's types. */
export function defineKind<AuthSchema extends z.ZodObject<{ type: z.ZodLiteral<string> }>, SecretSchema extends z.ZodType>(kind: {
  authSchema: AuthSchema;
  secretSchema: SecretSchema;
  compile(auth: z.output<AuthSchema>, secret: z.output<SecretSchema>, context: CompileContext): UpstreamCredential;
}) {
  return kind;
}

/** A zod error message used only when the value has the wrong type (a string secret given as an object, ...). */
export const wrongTypeMessage = (message: string) => ({
  error: (issue: { code?: string }) => (issue.code === "invalid_type" ? message : undefined),
});

const NO_CONTROL_CHARACTERS = /^[^\u0000-\u001f\u007f]*$/;

/** Text placed into a header or query value: no control characters, so no line breaks. */
export const headerSafeText = (max: number, wrongType: string) =>
  z
    .string(wrongTypeMessage(wrongType))
    .min(1)
    .max(max)
    .regex(NO_CONTROL_CHARACTERS, "no control characters or line breaks");

/** An http(s) URL an admin configures (base URL, token URL): origin and path only, normalised. */
export const httpUrl = z
  .string()
  .max(2000)
  .transform((text, ctx) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      ctx.addIssue({ code: "custom", message: "not a URL" });
      return z.NEVER;
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") ctx.addIssue({ code: "custom", message: "must be http or https" });
    if (url.username || url.password) ctx.addIssue({ code: "custom", message: "credentials belong in secret, not the URL" });
    if (url.search || url.hash) ctx.addIssue({ code: "custom", message: "no query string or fragment" });
    return url.origin + url.pathname;
  });
