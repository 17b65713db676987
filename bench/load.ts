/**
 * One autocannon run with exact latencies: autocannon's own histogram has 1 ms resolution, too coarse
 * for a 1.5 ms budget, so every response time (a float in ms, from process.hrtime) is kept and the
 * percentiles are computed here.
 */
import autocannon from "autocannon";

export type RequestSpec = { method: "GET" | "POST" | "DELETE"; path: string; headers: Record<string, string>; body?: string };

export type LoadResult = {
  connections: number;
  seconds: number;
  responses: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** bytes of response bodies per second */
  bytesPerSec: number;
  errors: number;
  timeouts: number;
  statuses: Record<string, number>;
  /** CPU time of the serving process per response (set by the caller, from /proc) */
  cpuMsPerRequest?: number;
  /** CPU time of the embedded PostgreSQL's processes per response (set by the caller; brokers on it only) */
  serverCpuMsPerRequest?: number;
};

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * Drives `baseUrl` with `connections` keep-alive connections for `seconds`; each request is built by
 * `next(n)` from a counter shared by all connections, so paths, methods and tokens rotate per request.
 */
export async function runLoad(options: {
  baseUrl: string;
  connections: number;
  seconds: number;
  next: (n: number) => RequestSpec;
}): Promise<LoadResult> {
  let counter = 0;
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let bytes = 0;
  const statuses: Record<string, number> = {};
  let finish!: (r: autocannon.Result) => void;
  let fail!: (e: Error) => void;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const instance = autocannon({
    url: options.baseUrl,
    connections: options.connections,
    duration: options.seconds,
    timeout: 30,
    requests: [
      {
        setupRequest: (req) => {
          const spec = options.next(counter++);
          return {
            ...req,
            method: spec.method,
            path: spec.path,
            headers: { ...spec.headers, ...(spec.body !== undefined && { "content-type": "application/json" }) },
            body: spec.body ?? "",
          };
        },
      },
    ],
  }, (err, result) => (err ? fail(err) : finish(result)));
  instance.on("response", (_client, statusCode, resBytes, responseTime) => {
    if (count === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[count++] = responseTime;
    bytes += resBytes;
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  });
  const result = await done;
  const sorted = latencies.slice(0, count).sort();
  const seconds = result.duration;
  return {
    connections: options.connections,
    seconds,
    responses: count,
    rps: count / seconds,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: count ? sorted[count - 1]! : Number.NaN,
    bytesPerSec: bytes / seconds,
    errors: result.errors,
    timeouts: result.timeouts,
    statuses,
  };
}
