/**
 * A Keyward broker in its own process, started exactly as src/main.ts does (createKeyward with the
 * configuration from the environment, request log on stdout), so that its RSS and CPU profile are its
 * own. Without DATABASE_URL it runs the embedded PostgreSQL on its data dir (the product default). It uses only
 * Keyward's public entry points (config, createKeyward), so it keeps working while src/ changes.
 */
import { Socket, type AddressInfo } from "node:net";
import { loadConfig } from "../src/config/config.js";
import { createKeyward } from "../src/keyward.js";
import { serveChild } from "./child.js";

const config = loadConfig(process.env);
const keyward = await createKeyward(config);
await keyward.app.listen({ port: 0, host: "127.0.0.1" });
const handlers = {
  /** The forward proxy's port, when KEYWARD_FORWARD_PROXY_PORT turned it on (the tunnel benchmark). */
  forwardProxyPort: async () => keyward.forwardProxy?.address().port ?? null,
};
serveChild((keyward.app.server.address() as AddressInfo).port, handlers, async () => {
  // If closing hangs, say what is still open before the parent gives up and kills the process.
  const port = (keyward.app.server.address() as AddressInfo).port;
  const watchdog = setTimeout(() => {
    const sockets = new Map<string, number>();
    for (const h of (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()) {
      if (!(h instanceof Socket) || h.remotePort === undefined) continue;
      const kind = h.localPort === port ? "inbound (clients)" : h.remotePort === 5432 ? "postgres" : `outbound :${h.remotePort}`;
      sockets.set(kind, (sockets.get(kind) ?? 0) + 1);
    }
    process.stderr.write(
      `broker close still pending after 10 s; open sockets: ${JSON.stringify(Object.fromEntries(sockets))}; ` +
        `resources: ${process.getActiveResourcesInfo().filter((r) => r !== "TCPSocketWrap").join(", ")}\n`,
    );
  }, 10_000);
  watchdog.unref();
  const t0 = performance.now();
  // keyward.close() can hang (see RESULTS.md): give up after 15 s and exit anyway, so that a
  // --cpu-prof profile is still written.
  const closed = await Promise.race([keyward.close().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 15_000).unref())]);
  clearTimeout(watchdog);
  if (!closed) process.stderr.write("broker close did not finish within 15 s: exiting without it\n");
  else if (performance.now() - t0 > 2000) process.stderr.write(`broker close took ${(performance.now() - t0).toFixed(0)} ms\n`);
});
