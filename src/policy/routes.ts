import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { installAdminAuth } from "../admin/auth.js";
import { simulate, simulateBody, type SimulateDeps } from "./simulate.js";

/** `POST /v1/policy/simulate` (admin): a dry run of the proxy's decision, with no upstream call. */
export async function policyRoutes(app: FastifyInstance, deps: SimulateDeps): Promise<void> {
  installAdminAuth(app, deps.prisma);
  app.withTypeProvider<ZodTypeProvider>().post(
    "/v1/policy/simulate",
    { config: { permission: "manage" }, schema: { body: simulateBody } },
    async (req) => simulate(deps, req.body),
  );
}
