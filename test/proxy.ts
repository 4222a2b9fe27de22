// A TCP proxy a test can cut and restore, to take a real dependency (PostgreSQL,
// Redis) away from the service and give it back, on the same port.
import type { Socket, TCPSocketListener } from 'bun'

export interface Proxy {
  port: number
  /** Refuses new connections and resets every open one. */
  cut(): void
  /** Listens again on the same port. */
  restore(): void
  [Symbol.dispose](): void
}

type Peer = { upstream?: Socket<Peer>; downstream?: Socket<Peer>; pending: Uint8Array[] }

export function tcpProxy(targetPort: number, targetHost = '127.0.0.1'): Proxy {
  const open = new Set<Socket<Peer>>()
  let listener: TCPSocketListener<Peer> | null = null
  let port = 0

  const listen = () => {
    listener = Bun.listen<Peer>({
      hostname: '127.0.0.1',
      port,
      socket: {
        open(client) {
          client.data = { pending: [] }
          open.add(client)
          void Bun.connect<Peer>({
            hostname: targetHost,
            port: targetPort,
            socket: {
              open(upstream) {
                upstream.data = { downstream: client, pending: [] }
                open.add(upstream)
                client.data.upstream = upstream
                for (const chunk of client.data.pending) upstream.write(chunk)
                client.data.pending = []
              },
              data(upstream, chunk) {
                upstream.data.downstream?.write(chunk)
              },
              close(upstream) {
                open.delete(upstream)
                upstream.data.downstream?.end()
              },
              error(upstream) {
                upstream.data.downstream?.end()
              },
            },
          }).catch(() => client.end())
        },
        data(client, chunk) {
          if (client.data.upstream) client.data.upstream.write(chunk)
          else client.data.pending.push(new Uint8Array(chunk))
        },
        close(client) {
          open.delete(client)
          client.data.upstream?.end()
        },
      },
    })
    port = listener.port
  }

  listen()
  return {
    get port() {
      return port
    },
    cut() {
      listener?.stop(true)
      listener = null
      for (const socket of open) socket.terminate()
      open.clear()
    },
    restore() {
      if (!listener) listen()
    },
    [Symbol.dispose]() {
      this.cut()
    },
  }
}
