export { Bitmap, type Run } from './bitmap.js';
