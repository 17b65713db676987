import type { Preset } from "./types.js";

// Railway's public GraphQL API (backboard.railway.com/graphql/v2). Names from Railway's own CLI
// (github.com/railwayapp/cli, src/gql/mutations). volumeDelete is the incident's call: it also deletes
// the volume's backups.
const mutation = (name: string, description: string) => ({ id: `railway.${name}`, description, match: { graphqlMutation: name } });

export const railway: Preset = {
  id: "railway",
  title: "Railway GraphQL API",
  protocol: "graphql",
  hosts: ["backboard.railway.app", "backboard.railway.com"],
  operations: [
    mutation("volumeDelete", "delete a volume, and with it the volume's backups"),
    mutation("volumeInstanceBackupDelete", "delete a volume backup"),
    mutation("volumeInstanceBackupBatchDelete", "delete several volume backups"),
    mutation("volumeInstanceBackupRestore", "restore a backup over a volume's current data"),
    mutation("volumeInstanceBackupScheduleUpdate", "change or remove a volume's backup schedule"),
    mutation("environmentDelete", "delete an environment and its volumes"),
    mutation("projectDelete", "delete a project and its volumes"),
  ],
  // `variables` returns every environment variable of a service (database URLs with passwords, other
  // services' tokens); `variablesForServiceDeployment` the same, rendered, as `railway run` asks for it.
  redactions: [
    {
      id: "railway.variables",
      description: "values of service environment variables (names stay visible)",
      rules: [{ graphqlField: "variables" }, { graphqlField: "variablesForServiceDeployment" }],
    },
  ],
};
