import { Fragment } from "preact";
import { useState } from "preact/hooks";
import type { Grant } from "../api";
import { useConfirm } from "../components/confirm-dialog";
import { GrantForm } from "../components/grant-form";
import { Empty, ErrorMessage } from "../components/notice";
import { PolicySimulator } from "../components/policy-simulator";
import { useConsole } from "../context";
import { shortId } from "../format";
import { useLoad } from "../hooks";
import { describeGrant } from "../rules";

/** Grants in readable form, a form for a new one, and the policy simulator. */
export function GrantsView() {
  const { api, announce } = useConsole();
  const data = useLoad(async () => {
    const [grants, agents, upstreams] = await Promise.all([api.grants(), api.agents(), api.upstreams()]);
    return { grants, agents, upstreams };
  }, [api]);
  const [dialog, ask] = useConfirm();
  const [error, setError] = useState<Error>();
  const { grants = [], agents = [], upstreams = [] } = data.data ?? {};
  const agentName = (id: string) => agents.find((a) => a.id === id)?.name ?? shortId(id);

  const remove = async (grant: Grant) => {
    const reason = await ask({
      title: `Delete grant ${grant.name}?`,
      message: "Every token issued under it is revoked at once, and its agents can get no new ones.",
      confirmLabel: "Delete grant",
      danger: true,
    });
    if (reason === null) return;
    try {
      await api.deleteGrant(grant.id);
      setError(undefined);
      announce(`Deleted grant ${grant.name}; its tokens are revoked.`);
      await data.reload();
    } catch (err) {
      setError(err as Error);
    }
  };

  return (
    <>
      <ErrorMessage error={error ?? data.error} />
      {data.loading ? (
        <p class="loading">Loading…</p>
      ) : (
        <>
          {grants.length === 0 ? (
            <Empty>No grants yet.</Empty>
          ) : (
            <ul class="cards grid">
              {grants.map((grant) => (
                <li key={grant.id} class="card">
                  <h2>{grant.name}</h2>
                  <dl class="facts">
                    {describeGrant(grant, agentName).map(([label, text]) => (
                      <Fragment key={label}>
                        <dt>{label}</dt>
                        <dd>{text}</dd>
                      </Fragment>
                    ))}
                  </dl>
                  <div class="actions">
                    <button type="button" class="button danger small" aria-label={`Delete grant ${grant.name}`} onClick={() => remove(grant)}>
                      Delete
                    </button>
                  </div>
                </li>
              ))}
            </ul>
          )}
          <div class="two-columns">
            <GrantForm
              agents={agents}
              upstreams={upstreams}
              onCreated={(grant) => {
                announce(`Created grant ${grant.name}.`);
                void data.reload();
              }}
            />
            <PolicySimulator grants={grants} />
          </div>
        </>
      )}
      {dialog}
    </>
  );
}
