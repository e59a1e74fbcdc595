export { createLogger } from './logger.ts';
export { createMetrics } from './metrics.ts';
export type { ServiceMetrics } from './metrics.ts';
export { loadConfigOrExit, onShutdown } from './service.ts';
export { createRuntime, localWorkspaceRoot, wire } from './wiring.ts';
export type { Wiring } from './wiring.ts';
export { localAuthSecret, mintToken, writePrivateFile } from './tokens.ts';
export type { TokenClaims } from './tokens.ts';
export {
  PREVIEW_COOKIE,
  PREVIEW_COOKIE_AUDIENCE,
  PREVIEW_TOKEN_PARAMETER,
  PREVIEW_URL_AUDIENCE,
  createPreviewTokenVerifier,
  mintPreviewToken,
  previewUrl,
} from './preview-tokens.ts';
export type { PreviewAudience, PreviewToken, PreviewVerdict } from './preview-tokens.ts';
export * from './aws-calls/index.ts';
export type { CallRecording } from './wiring.ts';
export {
  localStackPath,
  readLocalStack,
  removeLocalStack,
  writeLocalStack,
} from './local-stack-file.ts';
export type { LocalStackLookup } from './local-stack-file.ts';
export { STEP_FAULT_KINDS, STEP_FAULT_MESSAGE, withStepFaults } from './step-faults.ts';
export type { StepFaultKind, StepFaultOptions } from './step-faults.ts';
export { HttpWebhookSender, lookupHost, webhookSubscriptions } from './webhooks.ts';
