// `import path from '…' with { type: 'file' }` yields the file's path (a /$bunfs/ path once compiled).
declare module 'uplot/dist/*' {
  const path: string
  export default path
}

declare module '*.css' {
  const path: string
  export default path
}
