// The V8 flags a broker runs with on a given Node. Run as a script, it prints them for this Node
// (space-separated, nothing if none), so that `npm start` can put them on node's command line: V8 reads
// them only there (NODE_OPTIONS refuses them; set later from inside the process, this one is half
// effective, measured).
import { pathToFileURL } from "node:url";

/**
 * - `--heap-growing-percent=100`, before Node 24: the old generation may grow to 2× what the last full
 *   collection left, instead of up to 4× when V8 judges collection cheap. Under load most of what a call
 *   allocates outlives a scavenge or two (~68 KiB allocated per call, scavenges every ~40 ms at c=64 on
 *   Node 20, calls waiting on their audit events for part of that): the old generation took in ~50 MB/s
 *   of short-lived objects and grew from a ~36 MiB live heap to ~150 MiB before each full collection.
 *   With the flag the broker peaked at 193-198 MiB RSS instead of 274-278 (c=64, 15 s, Node 20), and a
 *   redacted 256 MiB stream cost the same CPU. 1.5× (`=50`) took RSS to 183-188 but made that stream
 *   cost up to twice the CPU: full collections ran while the stream's buffers came and went.
 * - `--external-memory-accounted-in-global-limit`, from Node 24 on: external memory (socket buffers,
 *   every chunk a proxy reads) counts within V8's global heap limit instead of on a trigger of its own.
 *   On Node 24 that trigger starts a full collection of the whole heap for every 64 MB of bodies
 *   relayed; the broker's live heap is ~40 MiB (a plain proxy's ~10), so streaming a 256 MiB body cost
 *   V8's worker threads 240 ms of CPU on top of the main thread's 340. With the flag: 30 ms (/proc, per
 *   thread). Node 20's V8 has neither that cost nor the flag. With external memory inside the global
 *   limit, any cap on the heap's growth (the flag above, at 50 or 100) made large streams cost up to
 *   twice the CPU on Node 24: it is not used there.
 * - `--max-semi-space-size=8`, on every Node: a young generation of two 8 MiB semi-spaces. Node 24
 *   grows them to 64 MiB each under load (328-352 MiB RSS after c=64 without a cap, 221-308 at 16, and
 *   312-374 instead of 472-504 after five redacted 256 MiB streams, at the same CPU); Node 20 has 16.
 *   At 8, under the c=64 mixed load (A/B, four pairs, alternated): peak RSS 180-190 MiB against
 *   205-212 on Node 20 and 183 against 208 on Node 24, CPU per call within the pairs' noise (-6% to
 *   +10%, about +1% on average). A call's objects live for its two audit waits (~10-25 ms at c=64),
 *   less than two scavenges apart at 8 MiB, so they still die young.
 */
export function brokerV8Flags(nodeVersion = process.versions.node) {
  const major = Number(nodeVersion.replace(/^v/, "").split(".")[0]);
  return major >= 24
    ? ["--external-memory-accounted-in-global-limit", "--max-semi-space-size=8"]
    : ["--heap-growing-percent=100", "--max-semi-space-size=8"];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.stdout.write(brokerV8Flags().join(" "));
