// dashboard.js runs in the browser; the service imports it `with { type: 'file' }`, which yields its path.
declare const path: string
export default path
