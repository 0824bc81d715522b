// timing.ts - how long a request waited for its handler and how long the
// handler ran: the clock every thread shares, the histogram buckets, and the
// per-action record a task's result carries (its layout is in wire.ts).
//
// The clock.  process.hrtime is uv_hrtime: CLOCK_MONOTONIC on Linux,
// QueryPerformanceCounter on Windows, one clock for the whole process, so a
// time read on the main thread can be subtracted from one read in a worker.
// performance.now() cannot be compared across threads: it counts from a
// timeOrigin of its own thread.  Within one thread it is the same clock
// (Node's performance.now() is uv_hrtime() minus that origin, src/node_perf.cc),
// so a worker reads process.hrtime once per task to learn its thread's offset
// and turns the performance.now() it already takes at every handler start
// into the shared clock with one addition (wire.ts: TaskResult.timing).

/**
 * Upper bounds (inclusive, `le` in Prometheus terms) of the wait and run time
 * histogram buckets, in milliseconds; one more bucket above the last bound
 * counts everything longer (`+Inf`).
 */
export const TURN_TIME_BUCKETS_MS: readonly number[] = Object.freeze([
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
]);

/** Buckets of one histogram: one per bound, plus `+Inf`. */
export const TURN_TIME_BUCKETS = TURN_TIME_BUCKETS_MS.length + 1;

/** The bucket of a time in ms: the first whose bound is >= ms; the last (+Inf) when none is. */
export function bucketOf(ms: number): number {
  const b = TURN_TIME_BUCKETS_MS;
  let i = 0;
  while (i < b.length && ms > b[i]!) i++;
  return i;
}

/** Now on the clock every thread of the process shares (uv_hrtime), in ms. */
export function sharedClockMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A histogram in a stats snapshot. */
export interface TimeHistogram {
  /** Bucket upper bounds in ms (TURN_TIME_BUCKETS_MS); `counts` has one more entry, for `+Inf`. */
  buckets: readonly number[];
  /** Observations per bucket, NOT cumulative: counts[i] are those in (buckets[i-1], buckets[i]]; the last entry those above every bound. */
  counts: number[];
  /** Observations (the sum of `counts`) and their total, in ms. */
  count: number;
  sum: number;
}
