import type { Preset } from "./types.js";

// Render's REST API (api.render.com/v1).
const del = (name: string, path: string, description: string) => ({
  id: `render.${name}`,
  description,
  match: { http: { method: "DELETE" as const, path } },
});

export const render: Preset = {
  id: "render",
  title: "Render REST API",
  protocol: "http",
  hosts: ["api.render.com"],
  operations: [
    del("diskDelete", "/v1/disks/*", "delete a persistent disk and its snapshots"),
    {
      id: "render.diskSnapshotRestore",
      description: "restore a disk snapshot over the disk's current data",
      match: { http: { method: "POST", path: "/v1/disks/*/snapshots/restore" } },
    },
    del("postgresDelete", "/v1/postgres/*", "delete a Postgres instance and its backups"),
    del("keyValueDelete", "/v1/key-value/*", "delete a Key Value instance"),
    del("redisDelete", "/v1/redis/*", "delete a Redis instance (older API name of Key Value)"),
    del("serviceDelete", "/v1/services/*", "delete a service and its attached disk"),
  ],
  // Render returns environment variable values and secret file contents in the clear: a service's own
  // (`[{ envVar: { key, value } }]`, one by key as `{ key, value }`) and an environment group's.
  redactions: [
    {
      id: "render.envVars",
      description: "values of environment variables and contents of secret files (names stay visible)",
      rules: [
        { path: "/v1/services/*/env-vars", json: "$..value" },
        { path: "/v1/services/*/env-vars/*", json: "$..value" },
        { path: "/v1/services/*/secret-files", json: "$..content" },
        { path: "/v1/services/*/secret-files/*", json: "$..content" },
        { path: "/v1/env-groups/**", json: "$..envVars[*].value" },
        { path: "/v1/env-groups/**", json: "$..secretFiles[*].content" },
      ],
    },
  ],
};
