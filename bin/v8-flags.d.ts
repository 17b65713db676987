/** The V8 flags a broker runs with on Node `nodeVersion` (default: this one); see v8-flags.js. */
export function brokerV8Flags(nodeVersion?: string): string[];
