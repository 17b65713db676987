import * as oauth from "oauth4webapi";
import type { TestBroker } from "./broker.js";

/** The test brokers' issuer (test/helpers/broker.ts); requests to it are sent to the broker's real port. */
export const ISSUER = "http://keyward.test";

/** oauth4webapi options that reach a test broker: its issuer URL mapped onto 127.0.0.1, plain HTTP allowed. */
export function clientOptions(broker: TestBroker) {
  return {
    [oauth.customFetch]: (url: string, init: RequestInit) => fetch(url.replace(ISSUER, broker.url), init),
    [oauth.allowInsecureRequests]: true,
  };
}

/** Discovers the broker's metadata (RFC 8414) the way any OAuth client would. */
export async function discover(broker: TestBroker): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(ISSUER);
  const response = await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...clientOptions(broker) });
  return oauth.processDiscoveryResponse(issuer, response);
}

/** POSTs a form to the broker (supertest), for requests no library would send. */
export function postForm(broker: TestBroker, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  return broker.http().post(path).set(headers).type("form").send(new URLSearchParams(fields).toString());
}

export const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;

export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
