import { describe, expect, it } from "vitest";
import { childEnvironment } from "../../src/cli/run/environment.js";
import { title } from "./cases.js";

/**
 * `keyward run -- <agent>` on a machine where an operator's shell also configures the broker (a laptop, a
 * CI job that migrates then runs an agent): what the agent inherits. The database URL alone is enough to
 * write itself a grant or an admin key.
 */
describe(title("SEC-27"), () => {
  it("withholds the database URL, the previous master key and the files they are read from", () => {
    const operator = {
      DATABASE_URL: "postgresql://keyward:db-password-7731@db.internal:5432/keyward",
      DATABASE_URL_FILE: "/run/secrets/database_url",
      KEYWARD_MASTER_KEY_PREVIOUS: "cHJldmlvdXMtbWFzdGVyLWtleS0zMi1ieXRlcy0hISE=",
      KEYWARD_MASTER_KEY_PREVIOUS_FILE: "/run/secrets/master_key_previous",
      KEYWARD_MASTER_KEY: "Y3VycmVudC1tYXN0ZXIta2V5LTMyLWJ5dGVzLSEhISE=",
      KEYWARD_ADMIN_KEY_FILE: "/run/secrets/admin_key",
    };
    const env = childEnvironment({
      parent: { PATH: "/usr/bin", KEYWARD_URL: "http://127.0.0.1:8080", ...operator },
      proxyUrl: "http://keyward:pw@127.0.0.1:4000",
      noProxy: "",
      caFile: "/tmp/k/keyward-ca.pem",
      bundleFile: "/tmp/k/ca-bundle.pem",
      placeholders: {},
    });
    for (const name of Object.keys(operator)) expect(env[name], name).toBeUndefined();
    const values = Object.values(env).join("\n");
    for (const value of Object.values(operator)) expect(values).not.toContain(value);
    expect(env.PATH).toBe("/usr/bin"); // the rest is passed on
  });
});
