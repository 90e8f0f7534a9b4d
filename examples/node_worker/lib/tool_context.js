'use strict';

/**
 * What a tool sees of its request, its second argument: `ctx.requestId` (a BigInt),
 * `ctx.sessionId` (or null), `ctx.sessionState` (an object kept on this worker for the session,
 * the same for each of its calls; null without a session), `ctx.signal` (an AbortSignal aborted
 * when the pool cancels the request: pass it to timers, fetch, child processes), `ctx.cancelled`,
 * and `ctx.workerId` (SNAKEPIT_WORKER_ID, or null).
 */
class ToolContext {
  constructor({ requestId, command, sessionId, sessionState, signal, workerId }) {
    this.requestId = requestId;
    this.command = command;
    this.sessionId = sessionId;
    this.sessionState = sessionState;
    this.signal = signal;
    this.workerId = workerId;
  }

  get cancelled() {
    return this.signal.aborted;
  }
}

module.exports = { ToolContext };
