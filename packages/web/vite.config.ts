// The page is served by tabr-serve under /app/ from this package's dist/ (same origin as the
// API, so the token never crosses origins). Everything is bundled; nothing loads from a CDN.
import { defineConfig } from 'vite'

export default defineConfig({
  base: '/app/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, target: 'es2022' },
})
