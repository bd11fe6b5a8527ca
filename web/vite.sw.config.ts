/**
 * The service worker: one classic script at /sw.js (a stable name, so the registration URL never
 * changes; the browser compares its bytes to update it). Built apart from the page so it imports
 * nothing: module service workers are not supported everywhere yet.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  publicDir: false,
  build: {
    outDir: 'dist',
    emptyOutDir: false,
    target: 'es2022',
    sourcemap: true,
    rolldownOptions: {
      input: 'src/sw.ts',
      output: { format: 'iife', entryFileNames: 'sw.js' },
    },
  },
});
