declare module '*.sql' {
  const text: string
  export default text
}

// `import path from './x.wasm' with { type: 'file' }` yields the file's path (a /$bunfs/ path once compiled).
declare module '*.wasm' {
  const path: string
  export default path
}

declare module 'swagger-ui-dist/*' {
  const path: string
  export default path
}

declare module 'redoc/bundles/*' {
  const path: string
  export default path
}
