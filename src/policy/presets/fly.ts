import type { Preset } from "./types.js";

/** Fly.io Machines REST API (api.machines.dev). */
export const flyMachines: Preset = {
  id: "fly-machines",
  title: "Fly.io Machines REST API",
  protocol: "http",
  hosts: ["api.machines.dev"],
  operations: [
    {
      id: "fly-machines.volumeDelete",
      description: "delete a volume and its snapshots",
      match: { http: { method: "DELETE", path: "/v1/apps/*/volumes/*" } },
    },
    {
      id: "fly-machines.appDelete",
      description: "delete an app and its volumes",
      match: { http: { method: "DELETE", path: "/v1/apps/*" } },
    },
  ],
};

/** Fly.io GraphQL API (api.fly.io/graphql), as flyctl calls it. */
export const flyGraphql: Preset = {
  id: "fly-graphql",
  title: "Fly.io GraphQL API",
  protocol: "graphql",
  hosts: ["api.fly.io"],
  operations: [
    { id: "fly-graphql.deleteVolume", description: "delete a volume and its snapshots", match: { graphqlMutation: "deleteVolume" } },
    { id: "fly-graphql.deleteApp", description: "delete an app and its volumes", match: { graphqlMutation: "deleteApp" } },
  ],
};
