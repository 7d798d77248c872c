export { EXIT_CODES, handleError } from './handle-error.js';
export { createProgram } from './program.js';
