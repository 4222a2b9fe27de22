// The public /dashboard: served entirely by the service under a strict CSP, and, in
// Debian's Chromium driven by playwright-core, a page that takes a key, lists the
// sensors, draws live readings and resumes after a dropped connection.
import { describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { DASHBOARD_CSP } from '../src/sensors/dashboard'
import { sensorApp } from './sensors.helpers'

const CHROMIUM = '/usr/bin/chromium'

// The little of the DOM these callbacks use, which run in the page (tsconfig has no DOM lib).
type Page = { document: { querySelector(selector: string): { textContent: string | null } | null } }
type Canvas = { toDataURL(): string }
const artifacts = join(import.meta.dir, '..', 'test-artifacts')

describe('GET /dashboard', () => {
  test('is public, under a strict CSP, and loads every script and style from the service', async () => {
    await using t = await sensorApp()
    const response = await t.request('/dashboard')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(response.headers.get('content-security-policy')).toBe(DASHBOARD_CSP)
    expect(DASHBOARD_CSP).toContain("script-src 'self'")
    const html = await response.text()
    expect(html).toContain('<label for="api-key">API key</label>')
    expect(html).toContain('<input id="api-key"')
    // No inline script, inline handler or inline style: all of it would break under the CSP.
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/)
    expect(html).not.toMatch(/\son[a-z]+=/i)
    expect(html).not.toMatch(/<style|\sstyle=/)
    expect(html).not.toMatch(/https?:\/\//)
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((u) => u !== 'data:,')
    expect(urls.sort()).toEqual([
      '/dashboard/assets/dashboard.css', '/dashboard/assets/dashboard.js', '/dashboard/assets/uPlot.iife.min.js', '/dashboard/assets/uPlot.min.css',
    ])
    for (const url of urls) {
      const asset = await t.request(url)
      expect(asset.status).toBe(200)
      expect(asset.headers.get('content-type')).toStartWith(url.endsWith('.js') ? 'text/javascript' : 'text/css')
      const text = await asset.text()
      expect(text.length).toBeGreaterThan(1000)
      expect(text).not.toMatch(/https?:\/\/(?!github\.com|leeoniya)[a-z]/i)
    }
  })

  test('an unknown asset is 404', async () => {
    await using t = await sensorApp()
    const response = await t.request('/dashboard/assets/secrets.txt')
    expect(response.status).toBe(404)
  })

  test('names of Object.prototype members are unknown assets too (404), not the prototype\'s', async () => {
    await using t = await sensorApp()
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
      const response = await t.request(`/dashboard/assets/${name}`)
      expect({ name, status: response.status }).toEqual({ name, status: 404 })
      expect(response.headers.get('content-type')).toBe('application/problem+json')
    }
  })
})

const haveChromium = existsSync(CHROMIUM)
if (!haveChromium && process.env.CI !== 'true') {
  console.warn(`\n⚠ test/dashboard.test.ts: ${CHROMIUM} is missing, so the browser test is SKIPPED (apt-get install chromium). CI installs it and runs it.\n`)
}

describe('the dashboard in Chromium', () => {
  test.skipIf(!haveChromium && process.env.CI !== 'true')('takes a key, lists sensors, draws live readings and resumes after a drop', async () => {
    await using t = await sensorApp()
    const url = t.listen()
    const key = await t.key()
    const hub = t.feed.hub
    for (let i = 0; i < 30; i++) hub.publish('sensors/greenhouse', { temperature: 20 + (i % 7) * 0.5, humidity: 50 + (i % 5) })

    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    })
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
      const problems: string[] = []
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text())
      })
      page.on('pageerror', (error) => problems.push(error.message))
      page.on('response', (response) => {
        if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`)
      })

      await page.goto(`${url}/dashboard`)
      const input = page.getByLabel('API key')
      await input.fill(key)
      await input.press('Enter')

      // Conditions the page makes true, waited for in the page (Playwright re-checks on every change).
      const seqOf = (sensor: string, seq: number, timeout = 10_000) => page.locator(`[data-sensor="${sensor}"][data-seq="${seq}"]`).waitFor({ timeout })
      const textIn = (selector: string, text: string, timeout = 10_000) =>
        page.waitForFunction(([sel, want]) => (globalThis as unknown as Page).document.querySelector(sel!)?.textContent?.includes(want!) ?? false, [selector, text], { timeout })

      const status = page.locator('#connection-text')
      await textIn('#connection-text', 'Live')
      const card = page.locator('[data-sensor="greenhouse"]')
      await seqOf('greenhouse', 30)
      expect(await card.getAttribute('data-points')).toBe('30')
      expect(await page.evaluate(() => sessionStorage.getItem('taskmesh.apiKey'))).toBe(key)
      const canvas = card.locator('canvas')
      const before = await canvas.evaluate((c) => (c as unknown as Canvas).toDataURL())

      // Live readings change the numbers and the chart.
      hub.publish('sensors/greenhouse', { temperature: 29.5, humidity: 80 })
      hub.publish('sensors/greenhouse', { temperature: 12.25, humidity: 91 })
      await seqOf('greenhouse', 32)
      expect(await card.locator('dd[data-field="temperature"]').textContent()).toBe('12.25')
      expect(await card.locator('dd[data-field="humidity"]').textContent()).toBe('91')
      expect(await canvas.evaluate((c) => (c as unknown as Canvas).toDataURL())).not.toBe(before)

      // A new sensor appears without a reload.
      hub.publish('sensors/barn', { co2: 612, unit: 'ppm' })
      const barn = page.locator('[data-sensor="barn"]')
      await barn.waitFor({ timeout: 10_000 })
      expect(await barn.locator('dd[data-field="co2"]').textContent()).toBe('612')

      // The connection drops; readings published meanwhile are replayed on reconnect.
      hub.disconnect()
      for (let i = 0; i < 3; i++) hub.publish('sensors/greenhouse', { temperature: 21 + i, humidity: 60 })
      await seqOf('greenhouse', 35, 15_000)
      await textIn('#log', '3 missed reading(s) replayed')
      expect(await status.textContent()).toBe('Live')
      expect(await card.getAttribute('data-points')).toBe('35')
      hub.publish('sensors/greenhouse', { temperature: 24.5, humidity: 61 })
      await seqOf('greenhouse', 36)
      expect(await card.locator('dd[data-field="temperature"]').textContent()).toBe('24.5')

      mkdirSync(artifacts, { recursive: true })
      await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true })
      expect(problems).toEqual([])
    } finally {
      await browser.close()
    }
  }, 60_000)
})
