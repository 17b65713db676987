import { existsSync, readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { BROKER_GLIBC_TUNABLES } from "../../../bin/malloc-tunables.js";
import { brokerV8Flags } from "../../../bin/v8-flags.js";

// No Docker engine runs here: the production files are checked for the structure that matters.
type Service = {
  image?: string;
  build?: unknown;
  deploy?: { replicas?: number };
  environment?: Record<string, string>;
  secrets?: string[];
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  read_only?: boolean;
};
const compose = parse(readFileSync("docker-compose.yml", "utf8")) as {
  services: Record<string, Service>;
  secrets: Record<string, { file: string }>;
};
const { postgres, keyward, lb } = compose.services as Record<string, Service>;
const haproxy = readFileSync("deploy/haproxy.cfg", "utf8");
const dockerfile = readFileSync("Dockerfile", "utf8");

describe("docker-compose.yml", () => {
  it("is valid against the Compose Specification's JSON schema (as bundled by dclint)", () => {
    // Not in dclint's exports, so read from where npm installs it; its $schema names draft-07 by an
    // https URL Ajv does not map to its built-in draft-07, so the schema itself is not re-validated.
    const schema = JSON.parse(readFileSync("node_modules/dclint/schemas/compose.schema.json", "utf8"));
    const validate = new Ajv({ strict: false, allErrors: true, validateSchema: false }).compile(schema);
    expect(validate(compose), JSON.stringify(validate.errors)).toBe(true);
    // The check can fail: a key Compose does not know is refused.
    expect(validate({ ...compose, services: { ...compose.services, keyward: { ...keyward, replica: 2 } } })).toBe(false);
  });

  it("runs PostgreSQL 16, two broker replicas and a load balancer, each with a health check", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["keyward", "lb", "postgres"]);
    expect(postgres!.image).toBe("postgres:16");
    expect(keyward!.build).toBe(".");
    expect(keyward!.deploy?.replicas).toBe(2);
    expect(keyward!.depends_on).toEqual({ postgres: { condition: "service_healthy" } });
    for (const service of [postgres, keyward, lb]) expect(service!.healthcheck?.test.length).toBeGreaterThan(1);
    expect(keyward!.healthcheck!.test.join(" ")).toContain("/readyz");
    expect(keyward!.environment).toMatchObject({ HOST: "0.0.0.0", PORT: "8080" });
    // Replicas share the issuer, or tokens from one would fail on the other.
    expect(keyward!.environment!.KEYWARD_ISSUER).toBe("${KEYWARD_ISSUER:-http://localhost:8080}");
  });

  it("publishes only the load balancer, which checks each replica's /readyz", () => {
    expect(keyward!.ports).toBeUndefined();
    expect(lb!.ports).toEqual(["8080:8080", "8081:8081"]);
    expect(keyward!.environment).toMatchObject({ KEYWARD_FORWARD_PROXY_PORT: "8081" });
    expect(haproxy).toMatch(/server-template forward \d+ keyward:8081 check/);
    expect(lb!.volumes).toEqual(["./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]);
    expect(haproxy).toMatch(/option httpchk GET \/readyz/);
    expect(haproxy).toMatch(/server-template broker \d+ keyward:8080 check .*resolvers docker/);
  });

  it("takes every secret from a file, and none in plain text", () => {
    const env = keyward!.environment!;
    expect(env.KEYWARD_MASTER_KEY).toBeUndefined();
    expect(env.DATABASE_URL).toBeUndefined();
    const fromFiles = { DATABASE_URL_FILE: "database_url", KEYWARD_MASTER_KEY_FILE: "master_key", KEYWARD_ADMIN_KEY_FILE: "admin_key" };
    for (const [variable, secret] of Object.entries(fromFiles)) {
      expect(env[variable]).toBe(`/run/secrets/${secret}`);
      expect(keyward!.secrets).toContain(secret);
    }
    expect(postgres!.environment).toMatchObject({ POSTGRES_PASSWORD_FILE: "/run/secrets/postgres_password" });
    expect(postgres!.environment!.POSTGRES_PASSWORD).toBeUndefined();
    for (const [name, { file }] of Object.entries(compose.secrets)) expect(file, name).toBe(`./secrets/${name}`);
    for (const service of Object.values(compose.services)) {
      for (const secret of service.secrets ?? []) expect(Object.keys(compose.secrets), secret).toContain(secret);
      for (const value of Object.values(service.environment ?? {})) {
        expect(value).not.toMatch(/^[A-Za-z0-9+/]{43}=$/); // a 32-byte base64 key
        expect(value).not.toMatch(/:\/\/[^/@]*:[^/@]+@/); // a URL with a password
      }
    }
    // The secret files never reach git or the image.
    expect(readFileSync(".gitignore", "utf8").split("\n")).toContain("/secrets/");
    expect(readFileSync(".dockerignore", "utf8").split("\n")).toContain("secrets");
  });
});

describe("Dockerfile", () => {
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const runtime = stages.at(-1)!;

  it("is multi-stage; the runtime installs production dependencies only and copies the generated Prisma client", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[0]).toMatch(/RUN npm ci\b/);
    expect(runtime).toMatch(/RUN npm ci --omit=dev --ignore-scripts/);
    expect(runtime).toMatch(/COPY --from=build \/app\/node_modules\/\.prisma \.\/node_modules\/\.prisma/);
    expect(runtime).toMatch(/CMD \["node", (?:"[^"]+", )*"bin\/keyward.js", "serve"\]/);
  });

  it("starts node with the V8 flags a broker runs with on the image's Node, as `npm start` does", () => {
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(runtime)![1]!) as string[];
    const imageNode = /^FROM node:(\d+)/m.exec(dockerfile)![1]!;
    expect(cmd.slice(1, cmd.indexOf("bin/keyward.js"))).toEqual(brokerV8Flags(`${imageNode}.0.0`));
    const { scripts } = JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> };
    expect(scripts.start).toBe("exec env $(node bin/malloc-tunables.js) node $(node bin/v8-flags.js) build/src/main.js");
  });

  it("gives glibc's malloc the settings `npm start` gives it", () => {
    expect(/^ENV GLIBC_TUNABLES=(\S+)$/m.exec(runtime)?.[1]).toBe(BROKER_GLIBC_TUNABLES);
    expect(/^node:\S+-(bookworm|bullseye|trixie)/.exec(runtime), "a glibc base image: musl ignores GLIBC_TUNABLES").not.toBeNull();
  });

  it("runs as a non-root user, with everything it copies present", () => {
    const user = /^USER (\S+)/m.exec(runtime)?.[1];
    expect(user).toBe("node");
    for (const [, source] of runtime.matchAll(/^COPY (?!--from)(\S+)/gm)) expect(existsSync(source!), source).toBe(true);
    // The image runs the compiled broker, which the build stage made; no TypeScript loader at run time.
    expect(runtime).toMatch(/^COPY --from=build \/app\/build\/src \.\/build\/src$/m);
    expect(runtime).not.toMatch(/^COPY src /m);
    const { dependencies } = JSON.parse(readFileSync("package.json", "utf8")) as Record<string, Record<string, string>>;
    expect(Object.keys(dependencies!)).not.toContain("tsx");
  });
  it("runs on the current Node LTS (24) in every stage", () => {
    for (const stage of stages) expect(stage).toMatch(/^node:24[-.\w]*( AS \w+)?\n/);
  });

  it("gives the embedded default a data dir that the image's user owns", () => {
    const user = /^USER (\S+)/m.exec(runtime)![1]!;
    const dataDir = /^ENV KEYWARD_DATA_DIR=(\S+)/m.exec(runtime)?.[1];
    expect(dataDir).toBe("/var/lib/keyward");
    // created and handed over before USER drops root
    const chown = runtime.indexOf(`chown ${user}:${user} ${dataDir}`);
    expect(chown).toBeGreaterThan(-1);
    expect(chown).toBeLessThan(runtime.indexOf(`USER ${user}`));
  });
});
