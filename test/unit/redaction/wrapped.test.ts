import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { base64Alignments, quotedPrintable, softWrappableForms } from "../../../src/redaction/forms.js";
import type { Range } from "../../../src/redaction/redaction.js";
import { compileWrappedSearch, endsSoftLine, endsWrappedLine, MIN_LINE_WIDTH } from "../../../src/redaction/wrapped.js";

const find = (forms: Buffer[], data: Buffer, offset = 0, startsBefore = data.length, softForms: Buffer[] = []) => {
  const found: Range[] = [];
  compileWrappedSearch(forms, softForms)!.find(data, offset, startsBefore, found);
  return found;
};

describe("compileWrappedSearch", () => {
  it("finds a secret's base64 in data of any length, wrapped at any width from 64, LF or CRLF, raw or escaped in a JSON string, wherever its breaks fall", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 12, maxLength: 90 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: MIN_LINE_WIDTH, max: 100 }),
        fc.constantFrom("\n", "\r\n", "\\n", "\\r\\n"),
        (secret, head, tail, width, lineBreak) => {
          const forms = base64Alignments(Buffer.from(secret)).map((f) => Buffer.from(f));
          const encoded = Buffer.concat([head, Buffer.from(secret), tail]).toString("base64");
          const wrapped = Buffer.from(encoded.replace(new RegExp(`(.{${width}})(?!$)`, "g"), `$1${lineBreak}`));
          // Where the secret's own characters lie in the wrapped text.
          const first = Math.ceil((head.length * 8) / 6);
          const last = Math.floor(((head.length + Buffer.byteLength(secret)) * 8) / 6);
          const at = (i: number) => i + Math.floor(i / width) * lineBreak.length;
          const crosses = Math.floor(first / width) !== Math.floor((last - 1) / width);
          const found = find(forms, wrapped);
          if (!crosses) {
            expect(found).toEqual([]);
            return;
          }
          expect(found.length).toBeGreaterThan(0);
          // Each occurrence covers the secret's characters and nothing past them.
          for (const range of found) {
            expect(range.start).toBeGreaterThanOrEqual(at(first) - 1);
            expect(range.end).toBeLessThanOrEqual(at(last - 1) + 2);
          }
          const covered = Math.min(...found.map((r) => r.start));
          expect(covered).toBeLessThanOrEqual(at(first + 1));
          expect(Math.max(...found.map((r) => r.end))).toBeGreaterThanOrEqual(at(last - 2) + 1);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("keeps only occurrences starting before startsBefore, shifted by offset", () => {
    const forms = base64Alignments(Buffer.from("sk_live_0123456789abcdef")).map((f) => Buffer.from(f));
    const wrapped = Buffer.from(`${"A".repeat(64 - 10)}${forms[0]!.subarray(0, 10)}\n${forms[0]!.subarray(10)}`);
    expect(find(forms, wrapped, 100)).toEqual([{ start: 154, end: 100 + wrapped.length }]);
    expect(find(forms, wrapped, 0, 54)).toEqual([]);
  });

  it("takes a line as wrapped base64 with 64 base64 characters before its break, or up to the data's start", () => {
    expect(endsWrappedLine(Buffer.from(`x ${"Q".repeat(64)}\n`), 66)).toBe(true);
    expect(endsWrappedLine(Buffer.from(`x ${"Q".repeat(63)}\n`), 65)).toBe(false);
    expect(endsWrappedLine(Buffer.from(`${"Q".repeat(10)}\n`), 10)).toBe(true);
  });

  it("finds a secret, as sent and quoted-printable, across soft line breaks wherever they fall, LF or CRLF", () => {
    fc.assert(
      fc.property(
        // Nothing of the secret in the text around it: it occurs once.
        fc.string({ minLength: 8, maxLength: 90 }).filter((s) => Buffer.byteLength(s) >= 8 && !/[p =é;]/.test(s)),
        fc.string({ unit: fc.constantFrom("p", " ", "=", "é"), maxLength: 120 }),
        fc.integer({ min: MIN_LINE_WIDTH, max: 76 }),
        fc.boolean(),
        (secret, head, width, crlf) => {
          const forms = softWrappableForms(secret).map((f) => Buffer.from(f));
          // Cut before `width` characters with the `=`, never inside an `=XX`.
          const lines = [""];
          for (const unit of quotedPrintable(`${head}${secret};`).match(/=[0-9A-F]{2}|[^]/g)!) {
            if (lines.at(-1)!.length + unit.length > width - 1) lines.push("");
            lines[lines.length - 1] += unit;
          }
          const text = Buffer.from(lines.join(crlf ? "=\r\n" : "=\n"));
          // Where each line starts in the text without its breaks; where a character of it lies in the text.
          const starts = lines.map((_, i) => lines.slice(0, i).join("").length);
          const lineOf = (i: number) => starts.filter((start) => start <= i).length - 1;
          const at = (i: number) => i + lineOf(i) * (crlf ? 3 : 2);
          const first = Buffer.byteLength(quotedPrintable(head));
          const last = first + Buffer.byteLength(quotedPrintable(secret)) - 1;
          const found = find([], text, 0, text.length, forms);
          if (lineOf(first) === lineOf(last)) expect(found).toEqual([]);
          else expect(found).toEqual([{ start: at(first), end: at(last) + 1 }]);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("takes a soft line break as an encoder's after 64 characters with no line break, or up to the data's start", () => {
    expect(endsSoftLine(Buffer.from(`x\n${"p".repeat(64)}=\r\n`), 66)).toBe(true);
    expect(endsSoftLine(Buffer.from(`x\n${"p".repeat(63)}=\r\n`), 65)).toBe(false);
    expect(endsSoftLine(Buffer.from(`${"p".repeat(10)}=\n`), 10)).toBe(true);
    expect(endsSoftLine(Buffer.from(`${"p".repeat(70)}\n`), 69)).toBe(false);
  });
});
