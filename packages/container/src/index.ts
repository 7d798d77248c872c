export {
  type ContainerInfo,
  detectContainer,
  type OpenContainerOptions,
  type OpenedContainer,
  openContainer,
} from './container.js';
export type { ContainerDisk, ContainerFormat } from './disk.js';
export { parseVmdkDescriptor, type VmdkExtent } from './vmdk.js';
