/**
 * A seeded pseudo-random source (mulberry32), so a soak run's choices can be repeated from
 * its seed. Timing still varies from run to run; the seed fixes what is chosen, not when the
 * system answers.
 */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** In [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.next() * items.length)];
  }

  /** A key chosen with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((sum, [, weight]) => sum + Math.max(weight, 0), 0);
    let roll = this.next() * total;
    for (const [key, weight] of entries) {
      roll -= Math.max(weight, 0);
      if (roll < 0) return key;
    }
    const last = entries.at(-1);
    if (!last) throw new Error('no weights to choose from');
    return last[0];
  }

  /** A seed for an independent stream (one per user, one for the chaos), so they do not interleave. */
  fork(): Random {
    return new Random(this.int(0, 0xffffffff));
  }
}
