/**
 * The first `maxChars` characters of a response body, reading no further than it takes to get them; the
 * rest is cancelled. A model chooses what to call: an upstream's download, log stream or endless answer
 * read in full before being cut would fill the `keyward mcp` process's memory, or hold the tool call for
 * ever.
 */
export async function leadingText(body: ReadableStream<Uint8Array> | null, maxChars: number): Promise<{ text: string; truncated: boolean }> {
  if (!body) return { text: "", truncated: false };
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    text += done ? decoder.decode() : decoder.decode(value, { stream: true });
    if (text.length > maxChars) {
      if (!done) await reader.cancel();
      return { text: text.slice(0, maxChars), truncated: true };
    }
    if (done) return { text, truncated: false };
  }
}
