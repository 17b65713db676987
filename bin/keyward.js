#!/usr/bin/env node
// The `keyward` command. Keyward runs its TypeScript directly with tsx (there is no build step): this
// registers tsx's loader in this process, so signals and stdio (serve, mcp) reach the CLI unchanged.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
