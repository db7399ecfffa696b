// End-to-end smoke test of the web UI in a real browser: starts `dypegraph serve` on a free port
// in a temporary folder, drives Debian's Chromium headless with playwright-core (never a
// downloaded browser), opens the bundled image example (EmptyImage → ImageInvert → ImageScale →
// SaveImage), queues it, waits for the image, saves a screenshot and fails on any console error.
//
//   node e2e/smoke.mjs [path/to/dypegraph]     (default ../bin/dypegraph; env DYPEGRAPH_BIN)
//   env CHROMIUM (default /usr/bin/chromium), E2E_OUT (screenshot folder, default e2e-artifacts)

import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { chromium } from 'playwright-core'

const bin = resolve(process.argv[2] || process.env.DYPEGRAPH_BIN || '../bin/dypegraph')
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium'
const outDir = resolve(process.env.E2E_OUT || 'e2e-artifacts')

function startServer(dir) {
  const args = ['serve', '--port', '0', '--data-dir', join(dir, 'data'), '--models-dir', join(dir, 'models'),
    '--input-dir', join(dir, 'input'), '--output-dir', join(dir, 'output'), '--temp-dir', join(dir, 'temp')]
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  const url = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the server did not start within 30 s:\n${log}`)), 30000)
    proc.on('error', (e) => fail(new Error(`cannot start ${bin}: ${e.message} (build it with make build)`)))
    proc.on('exit', (code) => fail(new Error(`the server exited (${code}):\n${log}`)))
    const read = (chunk) => {
      log += chunk
      const m = /listening on (http:\/\/\S+)/.exec(log)
      if (m) {
        clearTimeout(timer)
        ok(m[1].replace(/\/?$/, '/'))
      }
    }
    proc.stdout.on('data', read)
    proc.stderr.on('data', read)
  })
  return { proc, url }
}

async function run() {
  const dir = mkdtempSync(join(tmpdir(), 'dypegraph-e2e-'))
  const server = startServer(dir)
  let browser
  const problems = []
  try {
    const url = await server.url
    browser = await chromium.launch({
      executablePath: browserPath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    })
    const page = await browser.newPage({ viewport: { width: 1400, height: 850 } })
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`)
    })
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
    await page.goto(url)
    await page.waitForFunction(() => window.dypegraph && window.dypegraph.graph && window.dypegraph.graph._nodes.length > 0, null, { timeout: 20000 })

    await page.click('#btn-examples')
    await page.locator('#examples-menu li', { hasText: 'image_invert.ui' }).click()
    await page.waitForFunction(() => window.dypegraph.graph._nodes.some((n) => n.type === 'ImageInvert'), null, { timeout: 10000 })

    await page.click('#btn-queue')
    await page.waitForFunction(() => {
      const img = document.querySelector('#gallery img')
      return img && img.complete && img.naturalWidth > 0
    }, null, { timeout: 60000 })
    await page.waitForFunction(() => window.dypegraph.graph._nodes.some((n) => n.type === 'SaveImage' && n.imgs && n.imgs.length > 0 && n.imgs[0].naturalWidth > 0), null, { timeout: 20000 })
    await page.waitForSelector('#history-list .state.completed', { timeout: 20000 })
    mkdirSync(outDir, { recursive: true })
    await page.screenshot({ path: join(outDir, 'smoke.png') })
    console.log(`e2e: screenshot ${join(outDir, 'smoke.png')}`)
  } catch (e) {
    problems.push(e.message)
  } finally {
    if (browser) await browser.close()
    server.proc.kill('SIGTERM')
    await new Promise((r) => (server.proc.exitCode !== null ? r() : server.proc.on('exit', r)))
    rmSync(dir, { recursive: true, force: true })
  }
  for (const p of problems) console.error(p)
  console.log(problems.length ? 'e2e: 0 passed, 1 failed' : 'e2e: 1 passed, 0 failed')
  process.exit(problems.length ? 1 : 0)
}

run()
