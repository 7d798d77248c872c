export type {
  ContentOp,
  DiskSpec,
  ExtendedSpec,
  FilesystemSpec,
  FsType,
  Generator,
  PartitionSpec,
  Pos,
  TableKind,
} from './ast.js';
export {
  type BuildOptions,
  buildImage,
  buildImageFile,
  defaultCacheDir,
  type Manifest,
  type ManifestFile,
  type ManifestPartition,
  type ManifestVolume,
  specHash,
} from './build.js';
export { BuildError, SpecError, ToolMissingError } from './errors.js';
export { parseSpec } from './parse.js';
export { parseSize } from './size.js';
export { hasTool, TOOL_PACKAGES } from './tools.js';
