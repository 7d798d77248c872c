export { checkChain, discoverChain } from './chain.js';
export {
  type ContainerTargetFormat,
  type ContainerTargetOptions,
  containerTarget,
} from './container-target.js';
export { RESTORE_REASONS, type RestoreReason } from './reasons.js';
export {
  type RestoreOptions,
  type RestoreResult,
  type RestoreStrategy,
  restoreFromPath,
  restoreImage,
} from './restore.js';
export { fileTarget, memoryTarget, type RestoreTarget } from './target.js';
