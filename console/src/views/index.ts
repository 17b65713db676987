import type { FunctionComponent } from "preact";
import type { Permission } from "../api";
import { AgentsView } from "./agents";
import { ApprovalsView } from "./approvals";
import { AuditView } from "./audit";
import { GrantsView } from "./grants";
import { KillSwitchView } from "./kill-switch";
import { TokensView } from "./tokens";
import { UpstreamsView } from "./upstreams";

export type View = { id: string; title: string; permission: Permission; component: FunctionComponent };

/** The console's sections, in menu order; each is shown only to keys whose role has its permission. */
export const VIEWS: View[] = [
  { id: "tokens", title: "Live tokens", permission: "revoke", component: TokensView },
  { id: "kill-switch", title: "Kill switch", permission: "revoke", component: KillSwitchView },
  { id: "approvals", title: "Approvals", permission: "approve", component: ApprovalsView },
  { id: "audit", title: "Audit log", permission: "read_audit", component: AuditView },
  { id: "grants", title: "Grants", permission: "manage", component: GrantsView },
  { id: "agents", title: "Agents", permission: "manage", component: AgentsView },
  { id: "upstreams", title: "Upstreams", permission: "manage", component: UpstreamsView },
];
