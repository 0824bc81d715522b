// prometheus.ts - engine stats as Prometheus text exposition (format 0.0.4):
// serve the string on any HTTP endpoint with
// Content-Type: text/plain; version=0.0.4; charset=utf-8
import type { EngineStats } from './engine.js';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/**
 * Render a stats snapshot.  Every metric is prefixed (default `whirlwind_`)
 * and carries the `backend` label plus any `extraLabels` (e.g. a server name).
 */
export function statsToPrometheus(
  stats: EngineStats,
  options: { prefix?: string; extraLabels?: Record<string, string> } = {},
): string {
  const prefix = options.prefix ?? 'whirlwind_';
  const base = { backend: stats.backend, ...(options.extraLabels ?? {}) };
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
  metric('sends_total', 'counter', 'Send entries taken from JavaScript.', [[{}, stats.sendsOut]]);
  metric('sent_bytes_total', 'counter', 'Bytes written to sockets.', [[{}, stats.bytesOut]]);
  metric('ring_stalls_total', 'counter', 'Times an I/O thread found its ring into JavaScript full.', [[{}, stats.ring.stalls]]);
  metric('ring_used_bytes', 'gauge', 'Bytes of the rings into JavaScript not yet drained.', [[{}, stats.ring.usedBytes]]);
  metric('ring_capacity_bytes', 'gauge', 'Capacity of the rings into JavaScript.', [[{}, stats.ring.capacityBytes]]);
  metric('ring_deferred_records', 'gauge', 'Records waiting for ring space now.', [[{}, stats.ring.deferred]]);
  metric('accept_errors_total', 'counter', 'Accept failures (e.g. out of file descriptors).', [[{}, stats.acceptErrors]]);
  metric('stale_ops_total', 'counter', 'Sends and closes naming a connection already closed.', [[{}, stats.staleOps]]);
  metric('io_wakeups_total', 'counter', 'I/O thread loop turns.', [[{}, stats.ioWakeups]]);
  metric('io_threads', 'gauge', 'Native I/O threads.', [[{}, stats.ioThreads]]);
  return out.join('\n') + '\n';
}
