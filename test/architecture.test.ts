// The layout's rules, checked on the source: dependencies point one way (features → platform →
// db), no feature imports another, the platform names no feature's path, and files stay small.
import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const root = join(import.meta.dir, '..')
const src = join(root, 'src')
const features = ['tasks', 'sensors', 'inference', 'keys']

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
    .map((file) => join(dir, file))
}

/** The files under src/ that `file` imports, relative to src/ (`tasks/service.ts`). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)].map((m) => m[1]!)
  return specifiers.map((specifier) => relative(src, resolve(dirname(file), specifier)))
}

const area = (path: string) => path.split('/')[0]!

describe('layout', () => {
  test('imports are found the way these rules read them', () => {
    expect(importsOf(join(src, 'app.ts'))).toEqual(expect.arrayContaining(['tasks', 'db', 'platform/http']))
  })

  test('src/db imports nothing of the platform or a feature', () => {
    const offending = sources(join(src, 'db')).flatMap((file) =>
      importsOf(file).filter((target) => !target.startsWith('db/') && !target.startsWith('..')).map((target) => `${relative(src, file)} → ${target}`))
    expect(offending).toEqual([])
  })

  test('the platform imports no feature, and no feature imports another', () => {
    const offending: string[] = []
    for (const from of ['platform', ...features]) {
      for (const file of sources(join(src, from))) {
        for (const target of importsOf(file)) {
          if (features.includes(area(target)) && area(target) !== from) offending.push(`${relative(src, file)} → ${target}`)
        }
      }
    }
    expect(offending).toEqual([])
  })

  test('nothing under src/platform names a feature\'s path', () => {
    const paths = /['"`]\/(v1|v2|dashboard)\b/
    const offending = sources(join(src, 'platform')).flatMap((file) =>
      readFileSync(file, 'utf8').split('\n').map((line, i) => [line, i + 1] as const)
        .filter(([line]) => paths.test(line)).map(([line, n]) => `${relative(src, file)}:${n}: ${line.trim()}`))
    expect(offending).toEqual([])
  })

  test('no source file under src/ or bench/ is over 350 lines', () => {
    const long = [...sources(src), ...sources(join(root, 'bench'))]
      .map((file) => [relative(root, file), readFileSync(file, 'utf8').split('\n').length - 1] as const)
      .filter(([, lines]) => lines > 350)
    expect(long).toEqual([])
  })
})
