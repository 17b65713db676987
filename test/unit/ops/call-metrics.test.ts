import fc from "fast-check";
import { Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { CallCounter, CallHistogram } from "../../../src/ops/call-metrics.js";

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The same observations through prom-client's own metrics and through ours: /metrics must read the same. */
async function bothWays(observations: { upstream: string; decision: string; status: string; seconds: number }[]) {
  const theirs = new Registry();
  const counter = new Counter({ name: "calls_total", help: "Calls.", labelNames: ["upstream", "decision", "status"], registers: [theirs] });
  const histogram = new Histogram({ name: "call_seconds", help: "Time.", labelNames: ["upstream", "decision"], buckets: BUCKETS, registers: [theirs] });
  const ours = new Registry();
  const callCounter = new CallCounter("calls_total", "Calls.", ["upstream", "decision", "status"], ours);
  const callHistogram = new CallHistogram("call_seconds", "Time.", ["upstream", "decision"], BUCKETS, ours);
  for (const o of observations) {
    counter.inc({ upstream: o.upstream, decision: o.decision, status: o.status });
    histogram.observe({ upstream: o.upstream, decision: o.decision }, o.seconds);
    callCounter.inc([o.upstream, o.decision, o.status]);
    callHistogram.observe([o.upstream, o.decision], o.seconds);
  }
  return { theirs: await theirs.metrics(), ours: await ours.metrics(), reset: () => (ours.resetMetrics(), ours.metrics()) };
}

describe("call metrics", () => {
  it("read exactly as prom-client's counter and histogram would, for any observations", async () => {
    const observation = fc.record({
      upstream: fc.constantFrom("github", "railway", "-", 'we"ird\\name'),
      decision: fc.constantFrom("allow", "deny"),
      status: fc.constantFrom("200", "403", "502", "0"),
      seconds: fc.oneof(fc.constantFrom(...BUCKETS, 0, 31), fc.double({ min: 0, max: 40, noNaN: true })),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (observations) => {
        const { theirs, ours } = await bothWays(observations);
        expect(ours).toBe(theirs);
      }),
      { numRuns: 300 },
    );
  });

  it("are empty again after a reset", async () => {
    const { reset } = await bothWays([{ upstream: "github", decision: "allow", status: "200", seconds: 0.02 }]);
    expect(await reset()).not.toContain("github");
  });
});
