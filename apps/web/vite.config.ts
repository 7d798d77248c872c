import { defineConfig } from 'vite';

// A static page: relative asset paths, so `dist` can be served from any directory.
export default defineConfig({
  base: './',
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
  preview: { host: '127.0.0.1', port: 4173 },
});
