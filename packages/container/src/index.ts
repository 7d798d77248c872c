export {
  type ContainerInfo,
  detectContainer,
  type OpenContainerOptions,
  type OpenedContainer,
  openContainer,
} from './container.js';
export type { ContainerDisk, ContainerFormat } from './disk.js';
export {
  encodeQcow2CompressedEntry,
  encodeQcow2Header,
  encodeQcow2L1Table,
  encodeQcow2L2Table,
  encodeQcow2RefcountBlock,
  encodeQcow2RefcountTable,
  planQcow2Metadata,
  type Qcow2CompressedEntry,
  type Qcow2MetadataLayout,
  type Qcow2WriterGeometry,
  qcow2WriterGeometry,
} from './qcow2-writer.js';
export {
  encodeVdiBlockMap,
  encodeVdiHeader,
  VDI_BLOCK_FREE,
  VDI_WRITER_BLOCK_SIZE,
  type VdiWriterLayout,
  vdiWriterLayout,
} from './vdi-writer.js';
export { parseVmdkDescriptor, type VmdkExtent } from './vmdk.js';
