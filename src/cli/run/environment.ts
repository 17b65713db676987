import { SECRET_FILE_VARIABLES } from "../../config/config.js";

/**
 * Variables that hold the agent's own credentials (or an operator's): never passed to the child. What
 * the child needs to reach upstreams is the relay's address; what it may not have is anything that
 * would let it get tokens, or more, by itself. The operator's are every secret the broker's configuration
 * takes, and the files they may be read from: `DATABASE_URL` opens the database itself (grants, admin
 * keys, revocations), the master keys, current or previous, every upstream's secret.
 */
export const WITHHELD_VARIABLES = [
  "KEYWARD_CLIENT_ID",
  "KEYWARD_CLIENT_SECRET",
  "KEYWARD_CLIENT_SECRET_FILE",
  ...SECRET_FILE_VARIABLES.flatMap((name) => [name, `${name}_FILE`]),
];

/** Proxy variables, in both spellings: curl and Python read the lower-case ones, Node and Go the upper. */
const PROXY_VARIABLES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];
const NO_PROXY_VARIABLES = ["NO_PROXY", "no_proxy"];
/** Replaced as a whole by what they name, so they get the bundle: the system's CAs and Keyward's. */
const CA_BUNDLE_VARIABLES = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "AWS_CA_BUNDLE"];

export type ChildEnvironmentInput = {
  parent: NodeJS.ProcessEnv;
  /** The local relay, with the run's password. */
  proxyUrl: string;
  noProxy: string;
  /** Keyward's CA certificate alone (NODE_EXTRA_CA_CERTS adds it to Node's own CAs). */
  caFile: string;
  /** The system's CAs followed by Keyward's, for the variables that replace a runtime's trust store. */
  bundleFile: string;
  placeholders: Record<string, string>;
};

/** The child's environment: the parent's, less the withheld variables, plus the proxy, trust and placeholders. */
export function childEnvironment(input: ChildEnvironmentInput): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...input.parent };
  // Also ALL_PROXY and friends, which some clients prefer to HTTPS_PROXY: the child's traffic goes to the relay only.
  for (const name of [...WITHHELD_VARIABLES, "ALL_PROXY", "all_proxy"]) delete env[name];
  // A placeholder overrides a real value the parent may hold: that one must not reach the child.
  Object.assign(env, input.placeholders);
  for (const name of PROXY_VARIABLES) env[name] = input.proxyUrl;
  for (const name of NO_PROXY_VARIABLES) env[name] = input.noProxy;
  env.NODE_EXTRA_CA_CERTS = input.caFile;
  // Node 24 and later: its own fetch and http then read the proxy variables too.
  env.NODE_USE_ENV_PROXY = "1";
  for (const name of CA_BUNDLE_VARIABLES) env[name] = input.bundleFile;
  return env;
}
