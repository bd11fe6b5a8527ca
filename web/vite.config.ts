/**
 * The pages: index.html (the player's) and moderator.html, with what they import under assets/
 * (content-hashed names; code both import is split into a shared chunk).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const page = (file: string) => fileURLToPath(new URL(file, import.meta.url));

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    rolldownOptions: {
      input: { index: page('index.html'), moderator: page('moderator.html') },
    },
  },
});
