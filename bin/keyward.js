#!/usr/bin/env node
// The `keyward` command: the CLI compiled to build/ by `npm run build:server` (postinstall runs it), imported
// in this process, so signals and stdio (serve, mcp) reach the CLI unchanged.
import { existsSync } from "node:fs";

const cli = new URL("../build/src/cli/main.js", import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write("keyward: build/ is missing: run `npm run build:server` (npm install runs it)\n");
  process.exit(1);
}
await import(cli.href);
