'use strict';
// The example tools of the Node worker. A tools module exports `tools` (name → function) and
// optionally `initialize()`, `cleanup()` and `onSessionEnd(sessionId, state)`, each may be
// async. A tool is called as `tool(args, ctx)` (see lib/tool_context.js) and returns a JSON
// value or a promise of one; an async generator function (or generator function) is a
// streaming tool. Tools that tests follow print "tools: ..." lines on stdout, which the pool logs.

const { setTimeout: sleep } = require('timers/promises');
const { StreamChunk } = require('./lib/stream_chunk');

const say = (text) => console.log(`tools: ${text}`);

function add({ a, b }) {
  const integers = [a, b].every((x) => typeof x === 'bigint' || Number.isInteger(x));
  // Integers beyond 2**53 arrive as BigInts: add exactly.
  if (integers && [a, b].some((x) => typeof x === 'bigint')) return BigInt(a) + BigInt(b);
  if (typeof a !== 'number' || typeof b !== 'number') {
    throw new TypeError(`add needs two numbers a and b, got ${typeof a} and ${typeof b}`);
  }
  return a + b;
}
add.description = 'Add two numbers (integers exactly, whatever their size)';

/**
 * Yields 0, 1, ..., n - 1 (throwing a RangeError instead of `fail_at` if given); its finally
 * says when it stopped, however the stream ended.
 */
async function* count({ n, fail_at: failAt = null }, ctx) {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  let i = 0;
  try {
    for (; i < n; i += 1) {
      if (i === failAt) throw new RangeError(`failed at ${i}`);
      yield i;
    }
  } finally {
    say(`count ${ctx.requestId} stopped after ${i}`);
  }
}
count.description = 'Stream 0, 1, ..., n - 1';

/** Chunks with marks: {step, total}, the last one marked final, each with metadata. */
async function* progress({ total = 3 }) {
  for (let step = 1; step <= total; step += 1) {
    yield new StreamChunk({ step, total }, { isFinal: step === total, metadata: { stage: 'demo', step } });
  }
}
progress.description = 'Stream progress chunks with marks';

function whoami() {
  return { pid: process.pid };
}
whoami.description = "This worker's OS process id";

/** Waits `ms` milliseconds; a cancel stops it at once (the timer follows ctx.signal). */
async function wait({ ms }, ctx) {
  say(`wait ${ctx.requestId} started`);
  await sleep(ms, undefined, { signal: ctx.signal });
  return { waited_ms: ms };
}
wait.description = 'Wait ms milliseconds, stopped by a cancel';

/** How many calls this session has made on this worker (its state lasts until session_end). */
function session_counter(_args, ctx) {
  if (ctx.sessionState === null) throw new Error('session_counter needs a session_id');
  ctx.sessionState.calls = (ctx.sessionState.calls ?? 0) + 1;
  return ctx.sessionState.calls;
}
session_counter.description = "Count this session's calls";

function fail({ message = 'told to fail' }) {
  throw new RangeError(message);
}
fail.description = 'Throw a RangeError';

function onSessionEnd(sessionId, state) {
  say(`session ${sessionId} ended after ${state.calls ?? 0} calls`);
}

function cleanup() {
  say('cleanup');
}

module.exports = {
  tools: { add, count, progress, whoami, wait, session_counter, fail },
  onSessionEnd,
  cleanup,
};
