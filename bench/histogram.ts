// A small latency histogram with microsecond resolution: 1 µs buckets below 1 ms, then
// logarithmic buckets 0.5% wide (autocannon's own rounds to whole milliseconds, which hides
// everything interesting about a sub-millisecond ceiling).
const LINEAR = 1000
const GROWTH = Math.log(1.005)

export class LatencyHistogram {
  private counts = new Float64Array(LINEAR + 2500)
  total = 0

  /** Records one latency in milliseconds. */
  record(ms: number): void {
    const us = ms * 1000
    const index = us < LINEAR ? Math.max(0, Math.floor(us)) : Math.min(this.counts.length - 1, LINEAR + Math.floor(Math.log(us / LINEAR) / GROWTH))
    this.counts[index]!++
    this.total++
  }

  /** The latency at percentile p (0–100), in milliseconds; NaN when empty. */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN
    const rank = Math.ceil((p / 100) * this.total)
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return (i < LINEAR ? i + 0.5 : LINEAR * Math.exp((i - LINEAR + 0.5) * GROWTH)) / 1000
    }
    return Number.NaN
  }
}
