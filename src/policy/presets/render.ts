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
};
