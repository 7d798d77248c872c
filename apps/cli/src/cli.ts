#!/usr/bin/env node
import { handleError } from './handle-error.js';
import { createProgram } from './program.js';

createProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.exitCode = handleError(error, process.stderr);
  });
