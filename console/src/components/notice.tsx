import type { ComponentChildren } from "preact";
import { ApiError } from "../api";

/** Why a call failed, as the API said it; announced at once (role=alert). */
export function ErrorMessage({ error }: { error: Error | undefined }) {
  if (!error) return null;
  const detail = error instanceof ApiError ? `${error.message} (${error.status} ${error.code})` : error.message;
  return (
    <p class="notice error" role="alert">
      {detail}
    </p>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}
