import { readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

// The build goes to dist/, which package ui embeds (go:embed). `npm run dev` serves the sources
// and forwards the API to a dypegraph server on 127.0.0.1:8188 (DYPEGRAPH_URL overrides it).
const target = process.env.DYPEGRAPH_URL || 'http://127.0.0.1:8188'
const api = { target, changeOrigin: true, ws: true, headers: { origin: target } }

// cleanDist empties dist/ before a build except the committed placeholder dist/.keep (vite's
// emptyOutDir would delete it too).
const cleanDist = {
  name: 'dypegraph-clean-dist',
  apply: 'build',
  buildStart() {
    const dir = fileURLToPath(new URL('./dist', import.meta.url))
    let entries = []
    try {
      entries = readdirSync(dir)
    } catch {
      return
    }
    for (const e of entries) if (e !== '.keep') rmSync(join(dir, e), { recursive: true, force: true })
  },
}

export default defineConfig({
  base: './',
  plugins: [cleanDist],
  build: {
    outDir: 'dist',
    emptyOutDir: false, // cleanDist does it, keeping dist/.keep
    assetsDir: 'assets',
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: Object.fromEntries(['/api', '/ws', '/view', '/prompt', '/queue', '/history', '/object_info', '/interrupt', '/upload', '/dypegraph'].map((p) => [p, api])),
  },
  test: {
    environment: 'node',
    include: ['test/**/*.test.js'],
  },
})
