import type { Preset } from "./types.js";

/** GitHub REST API (api.github.com): deleting a repository deletes its history and releases. */
export const github: Preset = {
  id: "github",
  title: "GitHub REST API",
  protocol: "http",
  hosts: ["api.github.com"],
  operations: [
    {
      id: "github.repoDelete",
      description: "delete a repository",
      match: { http: { method: "DELETE", path: "/repos/*/*" } },
    },
  ],
};
