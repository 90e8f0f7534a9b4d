'use strict';
// The commands a worker answers: the built-ins (ping, echo, describe, as the Python bridge has
// them) and a tools module's tools, which replace built-ins of the same name.

const STREAMING_KINDS = new Set(['GeneratorFunction', 'AsyncGeneratorFunction']);

/** Whether `fn` is a streaming tool: a generator function (async or not), or marked `streaming = true`. */
function isStreaming(fn) {
  return fn.streaming === true || STREAMING_KINDS.has(fn.constructor?.name);
}

/**
 * Map of command name → {name, fn, streaming, description}, sorted by name, for a tools module
 * (`{tools: {name: fn, ...}}`). Throws TypeError for a module without a `tools` object of
 * functions (the worker then sends a fatal frame).
 */
function collectTools(module, { workerId = null } = {}) {
  const tools = module?.tools;
  if (tools === null || typeof tools !== 'object') {
    throw new TypeError(`a tools module exports {tools: {name: function, ...}}, got tools = ${typeof tools}`);
  }
  const entries = new Map();
  const add = (name, fn) => {
    if (typeof fn !== 'function') throw new TypeError(`tool ${JSON.stringify(name)} is not a function, got ${typeof fn}`);
    entries.set(name, { name, fn, streaming: isStreaming(fn), description: String(fn.description ?? '') });
  };
  for (const [name, fn] of Object.entries(builtins(workerId, () => registry))) add(name, fn);
  for (const [name, fn] of Object.entries(tools)) add(name, fn);
  const registry = new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return registry;
}

function builtins(workerId, registry) {
  const ping = (args) => {
    const reply = { status: 'pong', pid: process.pid, worker_id: workerId, timestamp: Date.now() / 1000 };
    if (Object.keys(args).length > 0) reply.args = args;
    return reply;
  };
  ping.description = 'Health check: pong, with the pid and worker id';
  const echo = (args) => args;
  echo.description = 'The arguments, unchanged';
  const describe = () =>
    [...registry().values()].map(({ name, description, streaming }) => ({ name, description, supports_streaming: streaming }));
  describe.description = 'The tools of this worker';
  return { ping, echo, describe };
}

module.exports = { collectTools, isStreaming };
