// errors.ts - the errors whirlwind throws on purpose.

/** An option failed validation; the message names the option. */
export class OptionError extends TypeError {
  readonly option: string;
  constructor(option: string, message: string, init?: { cause?: unknown }) {
    super(`options.${option} ${message}`, init);
    this.name = 'OptionError';
    this.option = option;
  }
}

/** A backend was asked for but cannot run here; `reason` says why. */
export class BackendUnavailableError extends Error {
  readonly backend: string;
  readonly reason: string;
  constructor(backend: string, reason: string) {
    super(`backend ${backend} is not available: ${reason}`);
    this.name = 'BackendUnavailableError';
    this.backend = backend;
    this.reason = reason;
  }
}
