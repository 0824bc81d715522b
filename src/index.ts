// whirlwind's public API.
export { listenRaw, RawServer } from './engine.js';
export type { RawHandlers, PeerAddress, CloseInfo, CloseReason, EngineStats } from './engine.js';
export { ENGINE_DEFAULTS, resolveEngineOptions, defaultIoThreads, BACKENDS } from './options.js';
export type { EngineOptions, ResolvedEngineOptions, BackendName, AcceptHook } from './options.js';
export { probeBackends, chooseBackend } from './backends.js';
export type { BackendInfo } from './backends.js';
export { OptionError, BackendUnavailableError } from './errors.js';
export { LAYOUT, layoutMismatches } from './layout.js';

// The wire protocol (docs/protocol.md) and its codec.
export * from './protocol/index.js';
// The TypeScript client.
export * from './client/index.js';
// Stats as Prometheus text exposition.
export { statsToPrometheus, actorStatsToPrometheus, PROMETHEUS_CONTENT_TYPE } from './prometheus.js';
// Socket actors on a worker pool.
export { SocketActor, handlers, ReplyError, PUSH_POLICIES } from './actor/actor.js';
export type { TurnContext, MainThreadApi, PushOptions, PushPolicy, ClosedInfo, TurnFailure, Handler, HandlerTable } from './actor/actor.js';
export { ActorServer, createServer, listen } from './actor/server.js';
export type { ActorServerStats, CloseOptions } from './actor/server.js';
export { TURN_TIME_BUCKETS_MS } from './actor/timing.js';
export type { TimeHistogram } from './actor/timing.js';
export { ACTOR_DEFAULTS, defaultMaxWorkers } from './actor/options.js';
export type { ActorServerOptions, WorkerResourceLimits } from './actor/options.js';
