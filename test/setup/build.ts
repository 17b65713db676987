import { execFileSync } from "node:child_process";

/**
 * Tests that start a broker or the `keyward` command in a process of their own run the compiled code, as
 * `npm start` and the image do: build/ is brought up to date with src/ before any of them runs
 * (`npm run build:server`, incremental: ~3 s when nothing changed).
 */
export default function setup() {
  execFileSync("npm", ["run", "--silent", "build:server"], { stdio: "inherit" });
}
