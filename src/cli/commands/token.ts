import type { Command } from "commander";
import { Keyward } from "../../sdk/client.js";
import { agentCredentials } from "../connection.js";
import { collect, contextOf, examples } from "../context.js";
import { emit } from "../output.js";

type IssueOptions = { grant: string; ttl?: string; method?: string[]; path?: string[]; wait: boolean; clientId?: string };

export function tokenCommands(program: Command): void {
  program
    .command("token")
    .description("tokens, as an agent gets them")
    .command("issue")
    .description("issue a token for a grant, as the agent (KEYWARD_CLIENT_ID, and KEYWARD_CLIENT_SECRET or the secret on stdin); prints the token")
    .requiredOption("--grant <grant>", "the grant's name or id")
    .option("--ttl <seconds>", "a shorter life than the default")
    .option("--method <method>", "only this method; repeatable", collect)
    .option("--path <pattern>", "only this path pattern; repeatable", collect)
    .option("--client-id <id>", "the agent's client id (KEYWARD_CLIENT_ID)")
    .option("--no-wait", "if a human must approve, report the approval instead of waiting for it")
    .addHelpText(
      "after",
      examples(
        "TOKEN=$(KEYWARD_CLIENT_ID=kwc_… KEYWARD_CLIENT_SECRET=kws_… keyward token issue --grant deploy-staging)",
        "pass show agents/deploy-bot | keyward token issue --client-id kwc_… --grant deploy-staging --method GET --ttl 300 --json",
      ),
    )
    .action(async (options: IssueOptions, command: Command) => {
      const { out, env } = contextOf(command);
      const keyward = await Keyward.connect(await agentCredentials(env, options.clientId, true));
      const token = await keyward.token(
        {
          grant: options.grant,
          ...(options.ttl && { ttlSeconds: Number(options.ttl) }),
          ...(options.method && { methods: options.method.map((m) => m.toUpperCase()) }),
          ...(options.path && { paths: options.path }),
        },
        { waitForApproval: options.wait },
      );
      emit(out, token, () => token.accessToken);
    });
}
