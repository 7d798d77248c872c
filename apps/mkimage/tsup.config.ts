import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts', 'src/testing.ts'],
  format: 'esm',
  dts: true,
  clean: true,
  target: 'node20',
});
