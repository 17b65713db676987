import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "./wait.js";

/** Debian's haproxy (`apt-get install -y haproxy`), if installed: the production topology test needs it. */
export const HAPROXY = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy", "/usr/bin/haproxy"].find(
  (path) => spawnSync(path, ["-v"], { stdio: "ignore" }).status === 0,
);

/**
 * deploy/haproxy.cfg as it would run outside Docker: the same defaults, health check and balancing, with
 * Docker's DNS discovery (`resolvers docker`, `server-template`) replaced by the given servers, the
 * frontend bound to a loopback port, and the health-check interval `checkIntervalMs` instead of 2 s so a
 * test sees a replica leave and rejoin quickly (fall and rise stay as deployed). Each response names the
 * replica that served it in `x-served-by`, for the test to watch the rotation.
 */
export function haproxyConfigFor(deployed: string, options: { port: number; servers: { name: string; address: string }[]; checkIntervalMs: number }): string {
  const lines: string[] = [];
  // Left out: Docker's DNS, and the forward proxy's TCP pass-through (transparent mode), which this
  // test does not exercise and whose fixed port may be taken on a shared machine.
  let skipping = false;
  for (const line of deployed.split("\n")) {
    if (/^\S/.test(line)) skipping = /^(resolvers docker|frontend forward_proxy|backend forward_proxies)\b/.test(line);
    if (skipping) continue;
    const template = /^(\s+)server-template \S+ \d+ \S+ (.*)$/.exec(line);
    if (template) {
      const [, indent, params] = template;
      const check = params!.replace(/\s*resolvers docker/, "").replace(/\s*init-addr none/, "").replace(/inter \S+/, `inter ${options.checkIntervalMs}ms`);
      for (const server of options.servers) lines.push(`${indent}server ${server.name} ${server.address} ${check}`);
      lines.push(`${indent}http-response set-header x-served-by %s`);
      continue;
    }
    lines.push(line.replace(/^(\s+)bind :\d+$/, `$1bind 127.0.0.1:${options.port}`));
  }
  const config = lines.join("\n");
  if (!config.includes(`bind 127.0.0.1:${options.port}`) || !options.servers.every((s) => config.includes(`server ${s.name} `))) {
    throw new Error("deploy/haproxy.cfg no longer has the shape this test rewrites (bind :PORT, server-template ... resolvers docker)");
  }
  return config;
}

export type LoadBalancer = { url: string; output(): string; stop(): Promise<void> };

/** HAProxy in the foreground on the generated configuration; refuses a configuration haproxy -c rejects. */
export async function startHaproxy(options: Parameters<typeof haproxyConfigFor>[1]): Promise<LoadBalancer> {
  if (!HAPROXY) throw new Error("haproxy is not installed (apt-get install -y haproxy)");
  const dir = mkdtempSync(join(tmpdir(), "keyward-haproxy-"));
  const file = join(dir, "haproxy.cfg");
  writeFileSync(file, haproxyConfigFor(readFileSync("deploy/haproxy.cfg", "utf8"), options) + "\n");
  const checked = spawnSync(HAPROXY, ["-c", "-q", "-f", file], { encoding: "utf8" });
  if (checked.status !== 0) throw new Error(`haproxy rejects the generated configuration:\n${checked.stderr}${checked.stdout}`);
  const child: ChildProcess = spawn(HAPROXY, ["-db", "-f", file], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (c) => (output += c));
  child.stderr!.on("data", (c) => (output += c));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const url = `http://127.0.0.1:${options.port}`;
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited at start:\n${output}`);
      return fetch(`${url}/lb-health`).then((r) => r.ok, () => false);
    },
    10_000,
    () => `haproxy to start:\n${output}`,
    50,
  );
  return {
    url,
    output: () => output,
    async stop() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
