// Who the client is: the peer address, or, when the peer is a trusted proxy (TRUSTED_PROXIES),
// the right-most address of X-Forwarded-For that is not one of the trusted proxies.
import { BlockList, isIP } from 'node:net'

export class TrustedProxies {
  private readonly list = new BlockList()
  private readonly any: boolean

  /** `entries` as config.ts validated them: addresses and CIDRs, IPv4 or IPv6. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/')
      const type = isIP(address) === 4 ? 'ipv4' : 'ipv6'
      if (prefix === undefined) this.list.addAddress(address, type)
      else this.list.addSubnet(address, Number(prefix), type)
    }
    this.any = entries.length > 0
  }

  private trusts(address: string): boolean {
    const family = isIP(address)
    return family !== 0 && this.list.check(address, family === 4 ? 'ipv4' : 'ipv6')
  }

  /**
   * The client's address. Each trusted proxy appends the peer it saw, so walking X-Forwarded-For
   * from the right, the first hop that is not trusted is the client; anything left of it is
   * whatever that client chose to send. A hop that is not an address ends the walk at the proxy
   * that forwarded it.
   */
  clientOf(peer: string, forwardedFor: string | null): string {
    if (!this.any || forwardedFor === null || !this.trusts(peer)) return peer
    const hops = forwardedFor.split(',')
    let client = peer
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!.trim()
      if (isIP(hop) === 0) return client
      client = hop
      if (!this.trusts(hop)) return hop
    }
    return client
  }
}
