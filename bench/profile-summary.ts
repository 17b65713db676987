/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by component
 * (npm package, Node internals, Keyward's own src/ folders, WebAssembly by its caller), and the share of
 * samples that have each component anywhere on the stack ("inclusive").
 *
 * As a script: `tsx bench/profile-summary.ts FILE.cpuprofile [TOP]`.
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

type CallFrame = { functionName: string; url: string; lineNumber: number; columnNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
type CpuProfile = { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] };

export type ProfileSummary = {
  file: string;
  totalMs: number;
  /** everything but (idle) */
  busyMs: number;
  components: { name: string; selfMs: number; selfPct: number; inclusivePct: number }[];
  functions: { name: string; where: string; component: string; selfMs: number; selfPct: number }[];
};

/** Which part of the process a frame belongs to. */
export function componentOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName.startsWith("(")) return functionName; // (garbage collector), (program), (idle)
    return "native/builtin";
  }
  if (url.startsWith("wasm://")) return "wasm";
  if (url.startsWith("node:")) {
    const mod = url.slice(5).split("/");
    return mod[0] === "internal" ? `node:${mod[1] ?? "internal"}` : `node:${mod[0]}`;
  }
  const nm = url.lastIndexOf("/node_modules/");
  if (nm !== -1) {
    const parts = url.slice(nm + "/node_modules/".length).split("/");
    return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const src = url.indexOf("/src/");
  if (src !== -1) {
    const rest = url.slice(src + 5).split("/");
    return `keyward src/${rest.length > 1 ? rest[0] : rest[0]!.replace(/\.[tj]s$/, "")}`;
  }
  if (url.includes("/bench/")) return "bench harness";
  return "other";
}

/**
 * `window` (µs on the monotonic clock, as process.hrtime and V8 profiles use) keeps only the samples
 * taken under load, leaving start-up and set-up out.
 */
export function summariseProfile(file: string, top = 25, window?: { startUs: number; endUs: number }): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // A WebAssembly frame belongs to whoever runs that module: the component of its nearest JS caller
  // (e.g. Prisma's query compiler, which is WebAssembly).
  const componentCache = new Map<number, string>();
  const componentOfNode = (id: number): string => {
    const cached = componentCache.get(id);
    if (cached !== undefined) return cached;
    let c = componentOf(byId.get(id)!.callFrame);
    if (c === "wasm") {
      let caller = "unknown";
      for (let cur = parent.get(id); cur !== undefined; cur = parent.get(cur)) {
        const pc = componentOf(byId.get(cur)!.callFrame);
        if (pc !== "wasm" && pc !== "native/builtin") {
          caller = pc;
          break;
        }
      }
      c = `wasm (${caller})`;
    }
    componentCache.set(id, c);
    return c;
  };
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  let kept = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (window && (t < window.startUs || t > window.endUs)) continue;
    kept++;
    const id = profile.samples[i]!;
    // a sample's time is the delta to the next one
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  if (window && kept === 0) throw new Error(`no sample of ${file} falls in the load window: clocks differ?`);
  let totalUs = 0;
  let idleUs = 0;
  const compSelf = new Map<string, number>();
  const compIncl = new Map<string, number>();
  const fnSelf = new Map<string, { name: string; where: string; component: string; us: number }>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const frame = node.callFrame;
    const component = componentOfNode(id);
    totalUs += us;
    if (component === "(idle)") {
      idleUs += us;
      continue;
    }
    compSelf.set(component, (compSelf.get(component) ?? 0) + us);
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|src|bench)\//, "$1/")}:${frame.lineNumber + 1}` : "";
    const key = `${frame.functionName}@${where}`;
    const entry = fnSelf.get(key) ?? { name: frame.functionName || "(anonymous)", where, component, us: 0 };
    entry.us += us;
    fnSelf.set(key, entry);
    // inclusive: each component once per sample, wherever it is on the stack
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = componentOfNode(cur);
      if (c === "(root)") continue;
      seen.add(c);
    }
    for (const c of seen) compIncl.set(c, (compIncl.get(c) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs ? (100 * us) / busyUs : 0);
  return {
    file,
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    components: [...compSelf.entries()]
      .map(([name, us]) => ({ name, selfMs: us / 1000, selfPct: pct(us), inclusivePct: pct(compIncl.get(name) ?? us) }))
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, top),
    functions: [...fnSelf.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, component: f.component, selfMs: f.us / 1000, selfPct: pct(f.us) })),
  };
}

export function formatProfileSummary(s: ProfileSummary): string {
  const lines = [
    `profile ${s.file}: ${(s.totalMs / 1000).toFixed(1)} s sampled, ${(s.busyMs / 1000).toFixed(1)} s busy (not idle)`,
    "",
    "component                          self ms   self %   on-stack %",
    ...s.components.map(
      (c) => `${c.name.padEnd(32)} ${c.selfMs.toFixed(0).padStart(9)} ${c.selfPct.toFixed(1).padStart(7)}% ${c.inclusivePct.toFixed(1).padStart(10)}%`,
    ),
    "",
    "function (self time)                                   self ms   self %   where",
    ...s.functions.map(
      (f) => `${f.name.slice(0, 50).padEnd(52)} ${f.selfMs.toFixed(0).padStart(9)} ${f.selfPct.toFixed(1).padStart(7)}%   ${f.where}`,
    ),
  ];
  return lines.join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: tsx bench/profile-summary.ts FILE.cpuprofile [TOP]\n");
    process.exit(2);
  }
  process.stdout.write(formatProfileSummary(summariseProfile(file, Number(process.argv[3] ?? 25))) + "\n");
}
