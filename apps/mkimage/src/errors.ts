/** A spec that cannot be built, with the 1-based line and column of the offending token. */
export class SpecError extends Error {
  readonly code = 'spec';
  override readonly name = 'SpecError';
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`line ${line}, column ${column}: ${reason}`);
  }

  static isInstance(e: unknown): e is SpecError {
    return e instanceof Error && (e as { code?: unknown }).code === 'spec' && 'line' in e;
  }
}

/** A system tool needed for the build is not installed. */
export class ToolMissingError extends Error {
  readonly code = 'tool-missing';
  override readonly name = 'ToolMissingError';
  constructor(
    readonly tool: string,
    readonly debianPackage: string,
  ) {
    super(`${tool} not found: install the Debian package '${debianPackage}'`);
  }

  static isInstance(e: unknown): e is ToolMissingError {
    return e instanceof Error && (e as { code?: unknown }).code === 'tool-missing';
  }
}

/** A system tool ran and failed; `stderr` holds what it said. */
export class BuildError extends Error {
  readonly code = 'build-failed';
  override readonly name = 'BuildError';
  constructor(
    message: string,
    readonly command: string,
    readonly stderr: string,
  ) {
    super(message);
  }

  static isInstance(e: unknown): e is BuildError {
    return e instanceof Error && (e as { code?: unknown }).code === 'build-failed';
  }
}
