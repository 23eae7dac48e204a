/**
 * gatehouse/client: the official client for browsers, React Native and Node. Only fetch and Web
 * APIs: nothing here may import a Node built-in or the server side of the package.
 */
export {
  createGatehouseClient,
  isMfaRequired,
  type ChangeEmailInput,
  type ChangePasswordInput,
  type GatehouseClient,
  type GatehouseClientOptions,
  type LoginInput,
  type MfaRequired,
  type RegisterInput,
  type RegisterResponse,
  type ResetPasswordInput,
  type SessionInfo,
  type UpdateMeInput,
  type VerifyMfaInput,
} from './client.js';
export { GatehouseError, isGatehouseError, type FieldError, type Problem, type ProblemCode } from './errors.js';
export type { components, operations, paths } from './schema.js';
export type { Mode, SessionEnd, TokenResponse, User } from './session.js';
export { DEFAULT_STORAGE_KEY, localStorageStore, memoryStore, type TokenStore, type WebStorage } from './token-store.js';
