#!/usr/bin/env node
import { handleError } from './handle-error.js';
import { createProgram } from './program.js';

// The AWS SDK (loaded for s3:// repositories) prints an eight-line notice on Node < 22 that its
// releases after January 2027 will need Node 22. diskube pins its SDK version, so the notice is
// about a future upgrade of diskube, not something the operator can act on: keep it off stderr
// unless the user chose otherwise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

createProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    process.exitCode = handleError(error, process.stderr);
  });
