import { request, type Dispatcher } from "undici";
import type { z } from "zod";
import { credentialUnavailable, KeywardError } from "../../http/errors.js";

// A token response is a small JSON object; anything bigger is refused rather than buffered.
const MAX_RESPONSE_BYTES = 64 * 1024;

export type TokenRequest = {
  url: URL;
  headers: Record<string, string>;
  body: string;
  expectedStatus: number;
  dispatcher: Dispatcher;
  /**
   * The whole exchange, from connecting to the last byte of the answer, must be over by then. The
   * dispatcher's timeouts bound each wait on its own; an endpoint sending its answer a byte at a time
   * within the body-idle timeout would otherwise hold every call waiting on this token for ever (FLT-19).
   */
  deadlineMs: number;
};

/**
 * POSTs to a token endpoint (OAuth token URL, GitHub access-token route) and returns its JSON answer
 * parsed by `schema`. Redirects are not followed; the answer must be complete within `deadlineMs`. Every
 * failure is a 502 whose logged detail names the status or the missing fields, never the response body:
 * it may hold a token.
 */
export async function requestToken<T>(input: TokenRequest, schema: z.ZodType<T>): Promise<T> {
  let text: string;
  const deadline = AbortSignal.timeout(input.deadlineMs);
  try {
    const response = await request(input.url, {
      method: "POST",
      headers: input.headers,
      body: input.body,
      dispatcher: input.dispatcher,
      signal: deadline,
    });
    if (response.statusCode !== input.expectedStatus) {
      // Read and dropped (up to undici's small dump limit) so the connection is released cleanly.
      await response.body.dump();
      throw credentialUnavailable(`token endpoint ${input.url.origin} answered ${response.statusCode}`);
    }
    text = await readCapped(response.body, input.url);
  } catch (err) {
    if (err instanceof KeywardError) throw err;
    if (deadline.aborted) throw credentialUnavailable(`token endpoint ${input.url.origin} did not answer in full within ${input.deadlineMs} ms`);
    throw credentialUnavailable(`token endpoint ${input.url.origin} could not be reached`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw credentialUnavailable(`token endpoint ${input.url.origin} answered with invalid JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => i.path.map(String).join(".") || "(root)"))].join(", ");
    throw credentialUnavailable(`token endpoint ${input.url.origin} answered without a usable token (${fields})`);
  }
  return parsed.data;
}

async function readCapped(body: Dispatcher.ResponseData["body"], url: URL): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Leaving the loop by throwing destroys the body.
    if (size > MAX_RESPONSE_BYTES) {
      throw credentialUnavailable(`token endpoint ${url.origin} answered with more than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}
