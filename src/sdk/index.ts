// The agent SDK, exported as `keyward/sdk`. Nothing here may import server code: it runs wherever fetch does.
export { Keyward, type ConnectOptions, type Token, type TokenOptions, type TokenRequest } from "./client.js";
export { Denied, KeywardApiError, NeedsApproval, Revoked, type KeywardErrorCode } from "./errors.js";
export { ERROR_CODES, isErrorCode, type DecisionCode, type ErrorCode, type RefusalCode, type Step } from "./codes.js";
