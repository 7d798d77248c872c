export { createProgram } from "./program.js";
export { EXIT_CODES, handleError } from "./handle-error.js";
