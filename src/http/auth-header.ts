import type { FastifyRequest } from "fastify";
import { credentialsMissing, unauthenticated } from "./errors.js";

/**
 * The bearer credential from the Authorization header, and only from there: never the query string
 * or a cookie, and never when the header is repeated.
 */
export function bearerToken(request: FastifyRequest): string {
  const header = singleAuthorization(request);
  // Schemes are case-insensitive (RFC 9110 §11.1): clients such as Octokit send `bearer`.
  const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header);
  if (!match) throw unauthenticated("unauthenticated", "expected Authorization: Bearer <token>");
  return match[1]!;
}

export function basicCredentials(request: FastifyRequest): { user: string; password: string } {
  const header = singleAuthorization(request);
  const match = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(header);
  const decoded = match ? Buffer.from(match[1]!, "base64").toString("utf8") : "";
  const colon = decoded.indexOf(":");
  // Client ids and secrets are printable ASCII (client_secret_basic form-encodes anything else): NUL,
  // control characters and undecodable bytes are refused here, before they reach a query or a log.
  if (colon <= 0 || !/^[\x20-\x7e]{1,1024}$/.test(decoded)) {
    const err = unauthenticated("invalid_client", "expected Authorization: Basic base64(clientId:clientSecret)");
    err.extra.headers = { "www-authenticate": 'Basic realm="keyward"' };
    throw err;
  }
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function singleAuthorization(request: FastifyRequest): string {
  // Node joins nothing for Authorization: a repeated header shows only in rawHeaders.
  const raw = request.raw.rawHeaders;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === "authorization") count++;
  if (count > 1) throw unauthenticated("unauthenticated", "more than one Authorization header");
  const value = request.headers.authorization;
  if (!value) throw credentialsMissing("missing Authorization header");
  return value;
}
