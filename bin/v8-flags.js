// The V8 flags a broker runs with on a given Node. Run as a script, it prints them for this Node
// (space-separated, nothing if none), so that `npm start` can put them on node's command line: V8 reads
// them only there (NODE_OPTIONS refuses them; set later from inside the process, this one is half
// effective, measured).
import { pathToFileURL } from "node:url";

/**
 * `--external-memory-accounted-in-global-limit`, from Node 24 on: external memory (socket buffers, every
 * chunk a proxy reads) counts within V8's global heap limit instead of on a trigger of its own. On Node
 * 24 that trigger starts a full collection of the whole heap for every 64 MB of bodies relayed; the
 * broker's live heap is ~40 MiB (a plain proxy's ~10), so streaming a 256 MiB body cost V8's worker
 * threads 240 ms of CPU on top of the main thread's 340. With the flag: 30 ms (/proc, per thread). Node
 * 20's V8 has neither that cost nor the flag.
 */
export function brokerV8Flags(nodeVersion = process.versions.node) {
  return Number(nodeVersion.replace(/^v/, "").split(".")[0]) >= 24 ? ["--external-memory-accounted-in-global-limit"] : [];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.stdout.write(brokerV8Flags().join(" "));
