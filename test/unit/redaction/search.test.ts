import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileRedaction, occurrences } from "../../../src/redaction/redaction.js";
import { compilePatternSearch } from "../../../src/redaction/search.js";

type Found = { start: number; end: number };

/** The obvious search, one indexOf per pattern: what the one-pass search must agree with. */
function naive(patterns: readonly Buffer[], data: Buffer, offset = 0, startsBefore = data.length): Found[] {
  const found: Found[] = [];
  for (const pattern of patterns) {
    for (let at = data.indexOf(pattern); at !== -1 && at < startsBefore; at = data.indexOf(pattern, at + 1)) {
      found.push({ start: offset + at, end: offset + at + pattern.length });
    }
  }
  return sorted(found);
}

const sorted = (found: Found[]) => [...found].sort((a, b) => a.start - b.start || a.end - b.end);
const find = (patterns: string[], data: string, offset?: number, startsBefore?: number) =>
  sorted(compilePatternSearch(patterns.map((p) => Buffer.from(p))).find(Buffer.from(data), offset, startsBefore));

describe("compilePatternSearch", () => {
  it("finds a pattern at the very start and at the very end", () => {
    expect(find(["secret-1"], "secret-1 and secret-1")).toEqual([
      { start: 0, end: 8 },
      { start: 13, end: 21 },
    ]);
  });

  it("finds overlapping occurrences, of one pattern and of several", () => {
    expect(find(["abab"], "ababab")).toEqual([
      { start: 0, end: 4 },
      { start: 2, end: 6 },
    ]);
    // A shorter pattern that is the longer one's start, and one that is its end.
    expect(find(["token-123456", "token-12", "n-123456"], "x token-123456 y")).toEqual([
      { start: 2, end: 10 },
      { start: 2, end: 14 },
      { start: 6, end: 14 },
    ]);
  });

  it("finds occurrences on both sides of, and across, the middle where its lanes meet", () => {
    for (let length = 20; length <= 80; length++) {
      for (let at = 0; at + 8 <= length; at++) {
        const data = ".".repeat(at) + "mid-form" + ".".repeat(length - at - 8);
        expect(find(["mid-form"], data)).toEqual([{ start: at, end: at + 8 }]);
      }
    }
  });

  it("finds nothing in data shorter than its shortest pattern, and nothing without patterns", () => {
    expect(find(["long-pattern", "short-pt"], "short-p")).toEqual([]);
    expect(compilePatternSearch([]).find(Buffer.from("anything"))).toEqual([]);
  });

  it("shifts by `offset` and keeps only occurrences starting before `startsBefore`", () => {
    expect(find(["needle-x"], "needle-x needle-x needle-x", 100, 10)).toEqual([
      { start: 100, end: 108 },
      { start: 109, end: 117 },
    ]);
    // An occurrence that starts before the bound but ends after it counts.
    expect(find(["needle-x"], "..needle-x", 0, 3)).toEqual([{ start: 2, end: 10 }]);
  });

  it("compares patterns longer than 256 bytes on their first 256 and checks the rest", () => {
    const long = "k".repeat(300) + "-end";
    expect(find([long], "x" + long + "x")).toEqual([{ start: 1, end: 305 }]);
    expect(find([long], "x" + long.slice(0, -1) + "X")).toEqual([]);
  });

  it("refuses patterns shorter than two bytes", () => {
    expect(() => compilePatternSearch([Buffer.from("a")])).toThrow(/at least 2 bytes/);
  });

  it("agrees with one indexOf per pattern on random patterns and data (small alphabets, so they overlap)", () => {
    const bytes = (alphabet: string, min: number, max: number) =>
      fc.array(fc.constantFrom(...alphabet), { minLength: min, maxLength: max }).map((cs) => Buffer.from(cs.join("")));
    fc.assert(
      fc.property(
        fc.array(bytes("abc", 2, 12), { minLength: 1, maxLength: 6 }),
        bytes("abcd", 0, 400),
        fc.nat(1000),
        fc.nat(420),
        (patterns, data, offset, startsBefore) => {
          const search = compilePatternSearch(patterns);
          expect(sorted(search.find(data, offset, Math.min(startsBefore, data.length)))).toEqual(
            naive(patterns, data, offset, Math.min(startsBefore, data.length)),
          );
          expect(sorted(search.find(data))).toEqual(naive(patterns, data));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("agrees with indexOf where different pairs of bytes share a table slot (0x00 0x10 and 0x01 0x00 do)", () => {
    const colliding = fc.constantFrom(0x00, 0x01, 0x10, 0x11, 0xff);
    const bytes = (min: number, max: number) => fc.array(colliding, { minLength: min, maxLength: max }).map((b) => Buffer.from(b));
    fc.assert(
      fc.property(fc.array(bytes(2, 10), { minLength: 1, maxLength: 5 }), bytes(0, 300), (patterns, data) => {
        expect(sorted(compilePatternSearch(patterns).find(data))).toEqual(naive(patterns, data));
      }),
      { numRuns: 2000 },
    );
  });

  it("finds every form of real secrets in a large body, as indexOf does", () => {
    const redaction = compileRedaction(["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "sk_live_Zx9/+q?a&b=c d\"é"]);
    const parts: string[] = [];
    for (let i = 0; i < 2000; i++) {
      parts.push(JSON.stringify({ id: i, note: "x".repeat(i % 37) }));
      if (i % 97 === 0) parts.push(redaction.patterns[i % redaction.patterns.length]!.toString("latin1"));
    }
    const body = Buffer.from(parts.join("\n"), "latin1");
    const found = sorted(occurrences(redaction, body));
    expect(found.length).toBeGreaterThanOrEqual(21);
    expect(found).toEqual(naive(redaction.patterns, body));
  });
});
