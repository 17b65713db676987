import { describe, expect, it } from "vitest";
import type { UpstreamCredential } from "../../../src/upstreams/credentials/contract.js";
import { liveReplaced, MAX_RETIRED_CREDENTIALS, retire, ROTATION_OVERLAP_MS, type RetiredCredential } from "../../../src/upstreams/retired-credentials.js";

const retiredSecrets = (retired: RetiredCredential[], now: number) => liveReplaced([], retired, now).retired.map((c) => c.injectedSecrets());

const credential = (secret: string): UpstreamCredential => {
  const secrets = Object.freeze([secret]);
  return { buffersBody: false, ownsHeader: () => false, prepare: async () => {}, injectedSecrets: () => secrets };
};
const HOUR = 3600_000;

describe("retire", () => {
  it("keeps every credential replaced within the overlap, oldest first, each until its own overlap ends", () => {
    let retired: RetiredCredential[] = [];
    retired = retire(retired, credential("first-secret"), 0);
    retired = retire(retired, credential("second-secret"), 1 * HOUR);
    retired = retire(retired, credential("third-secret"), 2 * HOUR);
    expect(retiredSecrets(retired, 3 * HOUR)).toEqual([["first-secret"], ["second-secret"], ["third-secret"]]);
    // The first's overlap ends first; the others stay theirs.
    expect(retiredSecrets(retired, ROTATION_OVERLAP_MS)).toEqual([["second-secret"], ["third-secret"]]);
    expect(retiredSecrets(retired, 2 * HOUR + ROTATION_OVERLAP_MS)).toEqual([]);
    // Those whose overlap ended are not carried on.
    expect(retire(retired, credential("fourth-secret"), ROTATION_OVERLAP_MS + 1 * HOUR).map((r) => r.credential.injectedSecrets())).toEqual([["third-secret"], ["fourth-secret"]]);
  });

  it("past the cap keeps the oldest and the newest, dropping the one replaced just before the newest", () => {
    let retired: RetiredCredential[] = [];
    for (let i = 0; i < MAX_RETIRED_CREDENTIALS + 3; i++) retired = retire(retired, credential(`secret-${i}`), i * 60_000);
    const secrets = retiredSecrets(retired, 20 * 60_000).map(([s]) => s);
    expect(secrets).toHaveLength(MAX_RETIRED_CREDENTIALS);
    expect(secrets.slice(0, MAX_RETIRED_CREDENTIALS - 1)).toEqual(Array.from({ length: MAX_RETIRED_CREDENTIALS - 1 }, (_, i) => `secret-${i}`));
    expect(secrets.at(-1)).toBe(`secret-${MAX_RETIRED_CREDENTIALS + 2}`);
  });
});

describe("liveReplaced", () => {
  it("gives what is still redacted, stored and replaced here, and when that next changes", () => {
    const stored = [{ secrets: ["stored-1"], until: 2 * HOUR }, { secrets: ["stored-2"], until: 5 * HOUR }];
    const retired = retire([], credential("replaced-here"), 0); // until ROTATION_OVERLAP_MS
    const at = (now: number) => {
      const live = liveReplaced(stored, retired, now);
      return { stored: live.stored, retired: live.retired.map((c) => c.injectedSecrets()), changesAt: live.changesAt };
    };
    expect(at(HOUR)).toEqual({ stored: [["stored-1"], ["stored-2"]], retired: [["replaced-here"]], changesAt: 2 * HOUR });
    expect(at(2 * HOUR)).toEqual({ stored: [["stored-2"]], retired: [["replaced-here"]], changesAt: 5 * HOUR });
    expect(at(5 * HOUR)).toEqual({ stored: [], retired: [["replaced-here"]], changesAt: ROTATION_OVERLAP_MS });
    expect(at(ROTATION_OVERLAP_MS)).toEqual({ stored: [], retired: [], changesAt: Infinity });
  });
});
