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
    {
      // GitHub serves every /repos/{owner}/{repo} route under /repositories/{id} too: its own pagination
      // links and search results point there.
      id: "github.repoDeleteById",
      description: "delete a repository by its id (/repositories/{id}, the same repository as /repos/{owner}/{repo})",
      match: { http: { method: "DELETE", path: "/repositories/*" } },
    },
  ],
};
