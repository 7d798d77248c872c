import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts', 'src/testing.ts'],
  format: 'esm',
  dts: true,
  clean: true,
  target: 'node20',
  // testing.ts uses the caller's vitest (`expect`): bundling a private copy of it broke
  // re-exported bindings under vitest's module runner.
  external: ['vitest'],
});
