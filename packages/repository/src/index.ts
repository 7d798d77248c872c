export { type Backend, isNotFound, isValidKey, type ObjectInfo } from './backend.js';
