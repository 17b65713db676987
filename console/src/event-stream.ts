/** One server-sent event: its `id`, `event` name and `data` (lines joined). */
export type ServerSentEvent = { id: string | null; event: string; data: string };

/**
 * Reads a text/event-stream body as the HTML spec parses it (fields, comments, multi-line data). Used
 * instead of EventSource, which cannot send an Authorization header.
 */
export async function* readEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event: ServerSentEvent = { id: null, event: "message", data: "" };
  let hasData = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "") {
          if (hasData) yield event;
          event = { id: null, event: "message", data: "" };
          hasData = false;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const text = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") event.id = text;
        else if (field === "event") event.event = text;
        else if (field === "data") {
          event.data = hasData ? `${event.data}\n${text}` : text;
          hasData = true;
        }
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}
