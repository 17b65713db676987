import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api, KillSwitch, Me, Permission } from "./api";
import type { Loaded } from "./hooks";

/** What every view needs: the API client, who is signed in, and a way to announce what just happened. */
export type ConsoleContext = {
  api: Api;
  me: Me;
  can: (permission: Permission) => boolean;
  /** Shown in the status bar and read out by screen readers. */
  announce: (message: string) => void;
  /** The kill switch's state, polled for the header; null data for keys that may not read it. */
  killSwitch: Loaded<KillSwitch | null>;
};

export const Console = createContext<ConsoleContext | null>(null);

export function useConsole(): ConsoleContext {
  const context = useContext(Console);
  if (!context) throw new Error("useConsole outside the signed-in console");
  return context;
}
