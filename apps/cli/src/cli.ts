#!/usr/bin/env node
import { createProgram } from './program.js';
import { handleError } from './handle-error.js';

createProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.exitCode = handleError(error, process.stderr);
  });
