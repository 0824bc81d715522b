// prometheus.ts - engine stats as Prometheus text exposition (format 0.0.4):
// serve the string on any HTTP endpoint with
// Content-Type: text/plain; version=0.0.4; charset=utf-8
// Type-only imports: erased at run time, so no import cycle with the actor server.
import type { ActorServerStats } from './actor/server.js';
import type { TimeHistogram } from './actor/timing.js';
import type { EngineStats } from './engine.js';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

type RenderOptions = { prefix?: string; extraLabels?: Record<string, string> };

/**
 * Checks what would otherwise make invalid exposition text; returns the
 * prefix and the base labels.  `backend` is the snapshot's backend name (its
 * absence means `stats` is not a snapshot).
 */
function checkRender(what: string, stats: unknown, backend: unknown, options: RenderOptions): { prefix: string; base: Record<string, string> } {
  if (typeof backend !== 'string') {
    throw new TypeError(`${what}(stats): stats must be a stats() snapshot, got ${stats === null ? 'null' : typeof stats === 'object' ? 'an object without one' : typeof stats}`);
  }
  if (options === null || typeof options !== 'object') throw new TypeError(`${what}(stats, options): options must be an object`);
  const prefix = options.prefix ?? 'whirlwind_';
  if (typeof prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
    throw new TypeError(`${what}: options.prefix must be a metric-name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*), got ${JSON.stringify(prefix) ?? String(prefix)}`);
  }
  const extra = options.extraLabels ?? {};
  if (extra === null || typeof extra !== 'object') throw new TypeError(`${what}: options.extraLabels must be an object of strings`);
  for (const [k, v] of Object.entries(extra)) {
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k) || k.startsWith('__')) {
      throw new TypeError(`${what}: options.extraLabels has an invalid label name ${JSON.stringify(k)} ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)`);
    }
    if (typeof v !== 'string') throw new TypeError(`${what}: options.extraLabels.${k} must be a string, got ${typeof v}`);
  }
  return { prefix, base: { backend, ...extra } };
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/**
 * Render a stats snapshot.  Every metric is prefixed (default `whirlwind_`)
 * and carries the `backend` label plus any `extraLabels` (e.g. a server name).
 */
export function statsToPrometheus(stats: EngineStats, options: RenderOptions = {}): string {
  const { prefix, base } = checkRender('statsToPrometheus', stats, (stats as EngineStats | null)?.backend, options);
  const out: string[] = [];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[Record<string, string>, number]>) => {
    out.push(`# HELP ${prefix}${name} ${help}`, `# TYPE ${prefix}${name} ${type}`);
    for (const [l, v] of samples) out.push(`${prefix}${name}${labels({ ...base, ...l })} ${v}`);
  };
  metric('connections_open', 'gauge', 'Connections open now.', [[{}, stats.connections.open]]);
  metric('connections_peak', 'gauge', 'Most connections open at once since the server started.', [[{}, stats.connections.peak]]);
  metric('connections_accepted_total', 'counter', 'Connections accepted.', [[{}, stats.connections.accepted]]);
  metric('connections_refused_total', 'counter', 'Connections refused by limits or the accept hook.', [[{}, stats.connections.refused]]);
  metric(
    'connections_closed_total',
    'counter',
    'Connections closed, by reason.',
    Object.entries(stats.connections.closed).map(([reason, n]) => [{ reason }, n]),
  );
  metric('frames_received_total', 'counter', 'Frames delivered to JavaScript.', [[{}, stats.framesIn]]);
  metric('received_bytes_total', 'counter', 'Payload bytes of those frames.', [[{}, stats.bytesIn]]);
  metric('sends_total', 'counter', 'Send entries taken from JavaScript (consecutive sends to one connection in one batch are one entry).', [[{}, stats.sendsOut]]);
  metric('sent_bytes_total', 'counter', 'Bytes written to sockets.', [[{}, stats.bytesOut]]);
  metric('ring_stalls_total', 'counter', 'Times an I/O thread found its ring into JavaScript full.', [[{}, stats.ring.stalls]]);
  metric('ring_used_bytes', 'gauge', 'Bytes of the rings into JavaScript not yet drained.', [[{}, stats.ring.usedBytes]]);
  metric('ring_capacity_bytes', 'gauge', 'Capacity of the rings into JavaScript.', [[{}, stats.ring.capacityBytes]]);
  metric('ring_deferred_records', 'gauge', 'Records waiting for ring space now.', [[{}, stats.ring.deferred]]);
  metric('accept_errors_total', 'counter', 'Accept failures (e.g. out of file descriptors).', [[{}, stats.acceptErrors]]);
  metric('stale_ops_total', 'counter', 'Sends and closes naming a connection already closed.', [[{}, stats.staleOps]]);
  metric('io_wakeups_total', 'counter', 'I/O thread loop turns.', [[{}, stats.ioWakeups]]);
  metric('pending_send_bytes', 'gauge', 'Bytes queued for sockets and not written yet.', [[{}, stats.pendingSendBytes]]);
  metric('io_threads', 'gauge', 'Native I/O threads.', [[{}, stats.ioThreads]]);
  return out.join('\n') + '\n';
}

/**
 * Render an ActorServer.stats() snapshot: the engine's metrics (as
 * statsToPrometheus) followed by the actor layer's, same prefix and labels.
 */
export function actorStatsToPrometheus(stats: ActorServerStats, options: RenderOptions = {}): string {
  const { prefix, base } = checkRender('actorStatsToPrometheus', stats, (stats as ActorServerStats | null)?.engine?.backend, options);
  const out: string[] = [statsToPrometheus(stats.engine, options).trimEnd()];
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[Record<string, string>, number]>) => {
    out.push(`# HELP ${prefix}${name} ${help}`, `# TYPE ${prefix}${name} ${type}`);
    for (const [l, v] of samples) out.push(`${prefix}${name}${labels({ ...base, ...l })} ${v}`);
  };
  metric('actor_connections', 'gauge', 'Actor connections open now.', [[{}, stats.connections]]);
  metric('actor_groups', 'gauge', 'Groups with members now.', [[{}, stats.groups]]);
  metric('actor_queued_requests', 'gauge', 'Requests waiting for a worker.', [[{}, stats.queuedRequests]]);
  metric('actor_mailbox_items', 'gauge', 'Items in all mailboxes, running ones included.', [[{}, stats.mailboxItems]]);
  metric('actor_deepest_mailbox', 'gauge', 'Items in the fullest mailbox.', [[{}, stats.deepestMailbox]]);
  metric('actor_paused_connections', 'gauge', 'Connections not read because their mailbox is at mailboxLimit.', [[{}, stats.pausedConnections]]);
  metric('actor_tasks_in_flight', 'gauge', 'Worker tasks running now.', [[{}, stats.tasksInFlight]]);
  metric('actor_slow_turns', 'gauge', 'Turns in flight longer than slowTurnMs.', [[{}, stats.slowTurns.length]]);
  metric('actor_workers', 'gauge', 'Worker threads alive.', [[{}, stats.workers]]);
  metric('actor_requests_total', 'counter', 'Requests accepted into mailboxes.', [[{}, stats.requests]]);
  metric('actor_tasks_total', 'counter', 'Worker tasks run.', [[{}, stats.tasks]]);
  metric('actor_turns_total', 'counter', 'Turns run (a run of one connection\'s requests, or a hook).', [[{}, stats.turns]]);
  metric('actor_failed_turns_total', 'counter', 'Requests and hooks that failed (threw, timed out, worker died).', [[{}, stats.failedTurns]]);
  metric('actor_worker_turns_total', 'counter', 'Turns run, per live worker thread (thread 0: by workers that have ended).', Object.entries(stats.workerTurns).map(([thread, n]) => [{ thread }, n]));
  metric('actor_action_requests_total', 'counter', 'Requests run, per action.', Object.entries(stats.actions).map(([action, a]) => [{ action }, a.requests]));
  metric('actor_action_mean_ms', 'gauge', 'Mean handler run time, per action.', Object.entries(stats.actions).map(([action, a]) => [{ action }, a.meanMs]));
  metric('actor_action_max_ms', 'gauge', 'Longest handler run time, per action.', Object.entries(stats.actions).map(([action, a]) => [{ action }, a.maxMs]));
  // Times stay in ms (names end in _ms, `le` bounds in ms) like the metrics
  // above and the stats snapshot, rather than Prometheus' base unit, seconds.
  const histogram = (name: string, help: string, samples: Array<[Record<string, string>, TimeHistogram]>) => {
    out.push(`# HELP ${prefix}${name} ${help}`, `# TYPE ${prefix}${name} histogram`);
    for (const [l, h] of samples) {
      // The snapshot counts per bucket; Prometheus buckets are cumulative, the last (+Inf) is the count.
      let below = 0;
      for (let i = 0; i < h.counts.length; i++) {
        below += h.counts[i]!;
        out.push(`${prefix}${name}_bucket${labels({ ...base, ...l, le: i < h.buckets.length ? String(h.buckets[i]) : '+Inf' })} ${below}`);
      }
      out.push(`${prefix}${name}_sum${labels({ ...base, ...l })} ${h.sum}`, `${prefix}${name}_count${labels({ ...base, ...l })} ${h.count}`);
    }
  };
  histogram(
    'actor_action_run_ms',
    'Handler run time (until an async handler settled), per action, in ms.',
    Object.entries(stats.actions).map(([action, a]) => [{ action }, a.runMs]),
  );
  histogram(
    'actor_action_wait_ms',
    'Time from a request\'s arrival (drained from the ring) to its handler\'s start, per action, in ms.',
    Object.entries(stats.actions).map(([action, a]) => [{ action }, a.waitMs]),
  );
  metric('actor_slow_consumers', 'gauge', 'Connections whose unsent bytes are above sendHighWaterBytes.', [[{}, stats.slowConsumers]]);
  metric('actor_held_push_bytes', 'gauge', 'Push bytes held for slow consumers.', [[{}, stats.heldPushBytes]]);
  metric('actor_push_drops_total', 'counter', 'Pushes to slow consumers not delivered, by what happened.', Object.entries(stats.pushDrops).map(([policy, n]) => [{ policy }, n]));
  return out.join('\n') + '\n';
}
