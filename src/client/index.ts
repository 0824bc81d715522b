// The TypeScript client.
export { Client, connect, type RequestOptions, type Reply, type Push, type GoAway, type ClientState } from './client.js';
export { CLIENT_DEFAULTS, type ClientOptions, type ReconnectOptions } from './options.js';
