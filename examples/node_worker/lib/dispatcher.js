'use strict';
// Answering what the pool sends, one request at a time: find the tool, call it with a
// ToolContext, send its reply frames (chunks, then exactly one final reply). Cancels and
// credits reach the running request at once (`cancel`, `credit`), not in turn.

const protocol = require('./protocol');
const { FrameTooLarge, DEFAULT_MAX_FRAME_SIZE } = require('./framing');
const { Cancelled, RunningCall } = require('./running_call');
const { StreamChunk } = require('./stream_chunk');
const { ToolContext } = require('./tool_context');

// How many cancels of requests not read yet are remembered (a cancel on the control
// descriptor may overtake its request on the request descriptor).
const MAX_EARLY = 64;

class Dispatcher {
  /**
   * `tools`: collectTools' map; `send(payload)`: writes one frame, returns a promise;
   * `onSessionEnd(sessionId, state)`: the tools module's hook, if any.
   */
  constructor({ tools, send, log, maxFrameSize = DEFAULT_MAX_FRAME_SIZE, onSessionEnd = null, workerId = null }) {
    this.tools = tools;
    this.send = send;
    this.log = log;
    this.maxFrameSize = maxFrameSize;
    this.onSessionEnd = onSessionEnd;
    this.workerId = workerId;
    // session id → the object tools see as ctx.sessionState; dropped at session_end.
    this.sessionStates = new Map();
    this.running = null;
    this.lastId = -1n; // the newest request started: ids grow in the order the pool sends them
    this.early = new Set();
    this.creditsClosed = false;
  }

  commandNames() {
    return [...this.tools.keys()];
  }

  /** Handles one message of protocol.classify (other than cancel and credit), in turn. */
  async handle(message) {
    switch (message.kind) {
      case 'request':
        return this.run(message);
      case 'heartbeat':
        // The pool's health check, answered here, never by a tool: an own `ping` is never one.
        return this.send(protocol.success(message.id, null));
      case 'session_end':
        return this.endSession(message.sessionId);
      case 'protocol_error':
        return this.send(protocol.failure(message.id, 'ProtocolError', message.message));
      case 'control':
        return this.log.warn(`ignoring a control frame of kind ${JSON.stringify(message.name)}`);
      case 'ignored':
        return this.log.warn(`ignoring a frame: ${message.reason}`);
      default:
        throw new TypeError(`not a message to handle in turn: ${message.kind}`);
    }
  }

  /** The pool cancelled request `id`: stop it if it runs, or when it starts if not read yet. */
  cancel(id) {
    if (this.running !== null && this.running.id === id) return this.running.cancel();
    if (id > this.lastId && this.early.size < MAX_EARLY) {
      this.early.add(id);
      return true;
    }
    return false; // answered already: the cancel crossed its reply
  }

  /** The pool's consumer of stream `id` took `count` chunks; dropped unless `id` is the running stream. */
  credit(id, count) {
    return this.running !== null && this.running.id === id && this.running.credit(count);
  }

  /** The channel carrying credits ended: a stream waiting for credit stops, now and later. */
  closeCredits() {
    this.creditsClosed = true;
    if (this.running !== null) this.running.closeCredits();
  }

  async run(request) {
    const { id, command, args, sessionId, stream } = request;
    const tool = this.tools.get(command);
    if (tool === undefined) {
      const message = `unknown command '${command}'; available: ${this.commandNames().join(', ')}`;
      return this.send(protocol.failure(id, 'UnknownCommand', message));
    }
    if (stream && !tool.streaming) {
      return this.send(protocol.failure(id, 'StreamingNotSupported', `command '${command}' is not a streaming tool`));
    }
    const call = new RunningCall(id, request.window);
    this.lastId = id;
    if (this.early.size > 0) {
      if (this.early.has(id)) call.cancel();
      this.early = new Set([...this.early].filter((early) => early > id));
    }
    if (this.creditsClosed) call.closeCredits();
    let sessionState = null;
    if (sessionId !== null) {
      sessionState = this.sessionStates.get(sessionId);
      if (sessionState === undefined) this.sessionStates.set(sessionId, (sessionState = {}));
    }
    const ctx = new ToolContext({ requestId: id, command, sessionId, sessionState, signal: call.signal, workerId: this.workerId });
    this.running = call;
    let final;
    try {
      final = stream ? await this.stream(tool, args, ctx, call) : await this.call(tool, args, ctx, call);
    } finally {
      this.running = null; // from here a cancel for it crossed its reply
    }
    return this.send(final);
  }

  /** The one reply frame of a plain call. */
  async call(tool, args, ctx, call) {
    try {
      if (call.cancelled) throw call.signal.reason;
      let result = await call.race(invoke(tool, args, ctx));
      if (isIterator(result)) result = await this.collect(result, call);
      return this.fit(protocol.success(call.id, result), 'result');
    } catch (error) {
      return this.failure(call, error);
    }
  }

  /** Sends each item the tool yields as a chunk, within the credit window; returns the final reply. */
  async stream(tool, args, ctx, call) {
    let items = null;
    try {
      if (call.cancelled) throw call.signal.reason;
      const result = await call.race(invoke(tool, args, ctx));
      items = isIterator(result) ? result : [result][Symbol.iterator]();
      for (;;) {
        const step = await call.race(Promise.resolve(items.next()));
        if (step.done) break;
        const item = step.value;
        const frame = item instanceof StreamChunk
          ? protocol.chunk(call.id, item.data, item.marks())
          : protocol.chunk(call.id, item);
        this.fit(frame, 'chunk');
        await call.takeCredit(this.log);
        await this.send(frame);
        // Let the event loop read the descriptors: a generator that never awaits anything
        // else would otherwise run in microtasks only, and no cancel could ever reach it.
        await new Promise(setImmediate);
        if (call.cancelled) throw call.signal.reason;
      }
      return protocol.done(call.id);
    } catch (error) {
      return this.failure(call, error);
    } finally {
      // However the stream ended, close the generator so that its finally blocks run before
      // the final reply (a generator awaiting something that ignores ctx.signal holds it here).
      if (items !== null && typeof items.return === 'function') {
        try {
          await items.return();
        } catch (error) {
          this.log.warn(`closing the stream of request ${call.id} failed: ${error?.stack ?? error}`);
        }
      }
    }
  }

  /** A generator's items as one array (a chunk object gives its data), for a call without stream. */
  async collect(items, call) {
    const values = [];
    let done = false;
    try {
      for (;;) {
        const step = await call.race(Promise.resolve(items.next()));
        if (step.done) break;
        values.push(step.value instanceof StreamChunk ? step.value.data : step.value);
      }
      done = true;
      return values;
    } finally {
      if (!done && typeof items.return === 'function') await items.return();
    }
  }

  /** `payload` if it fits a frame; throws FrameTooLarge otherwise. */
  fit(payload, what) {
    if (payload.length > this.maxFrameSize) throw new FrameTooLarge(payload.length, this.maxFrameSize, what);
    return payload;
  }

  failure(call, error) {
    if (call.cancelled) {
      const reason = call.signal.reason;
      return protocol.failure(call.id, 'Cancelled', reason.message);
    }
    if (error instanceof Error) {
      return protocol.failure(call.id, error.name || 'Error', error.message, error.stack ?? '');
    }
    return protocol.failure(call.id, 'Error', `the tool threw a non-Error value: ${String(error)}`);
  }

  /** Session `sessionId` ended: drop its state, and give it to the hook if this worker served it. */
  async endSession(sessionId) {
    const state = this.sessionStates.get(sessionId);
    this.sessionStates.delete(sessionId);
    if (state === undefined || typeof this.onSessionEnd !== 'function') return;
    try {
      await this.onSessionEnd(sessionId, state);
    } catch (error) {
      this.log.warn(`onSessionEnd(${JSON.stringify(sessionId)}) failed: ${error?.stack ?? error}`);
    }
  }
}

/** The tool's result as a promise; a synchronous throw becomes a rejection. */
function invoke(tool, args, ctx) {
  return new Promise((resolve) => resolve(tool.fn(args, ctx)));
}

function isIterator(value) {
  return value !== null && typeof value === 'object' && typeof value.next === 'function'
    && (Symbol.asyncIterator in value || Symbol.iterator in value);
}


module.exports = { Dispatcher, Cancelled };
