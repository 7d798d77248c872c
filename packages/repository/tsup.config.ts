import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/node.ts', 'src/s3.ts'],
  format: 'esm',
  dts: true,
  clean: true,
  target: 'node20',
});
