#!/usr/bin/env node
'use strict';
// A snakepit_rs worker in Node.js (wire protocol v1, docs/protocol.md): start the tools
// module, send ready (or fatal), answer requests until the request descriptor ends, clean up,
// exit. Usage: node worker.js [--tools path/to/tools.js]  (default: tools.js beside this file)

const path = require('path');
const { pathToFileURL } = require('url');
const { openReadable, FrameWriter } = require('./lib/channel');
const { ControlReader } = require('./lib/control_reader');
const { Dispatcher } = require('./lib/dispatcher');
const { DEFAULT_MAX_FRAME_SIZE } = require('./lib/framing');
const { createLog } = require('./lib/log');
const protocol = require('./lib/protocol');
const { RequestLoop, EXIT_OK, EXIT_PROTOCOL } = require('./lib/request_loop');
const { collectTools } = require('./lib/tool_registry');

const EXIT_FATAL = 1; // the tools module could not be started (a fatal frame was sent)
const CONTROL_KINDS = ['cancel', 'credit', 'heartbeat', 'session_end'];
const log = createLog();

async function main(argv) {
  let maxFrameSize, input, writer, stop;
  try {
    const requestFd = envInt('SNAKEPIT_REQUEST_FD', 3);
    const replyFd = envInt('SNAKEPIT_REPLY_FD', 4);
    maxFrameSize = envInt('SNAKEPIT_MAX_FRAME_SIZE', DEFAULT_MAX_FRAME_SIZE);
    input = openReadable(requestFd, 'request');
    writer = new FrameWriter(replyFd, (error) => stop(EXIT_OK, `the pool is gone (reply fd: ${error.code ?? error.message})`));
  } catch (error) {
    log.warn(`cannot start: ${error.message} (see docs/protocol.md)`);
    return process.exit(EXIT_PROTOCOL);
  }

  const toolsPath = parseArgs(argv);
  const workerId = process.env.SNAKEPIT_WORKER_ID || null;
  let module, tools;
  try {
    module = await loadModule(toolsPath);
    tools = collectTools(module, { workerId });
    if (typeof module.initialize === 'function') await module.initialize();
  } catch (error) {
    const text = error?.stack ?? String(error);
    log.warn(`cannot start the tools module ${toolsPath}:\n${text}`);
    const message = `cannot start the tools module ${toolsPath}: ${error?.message ?? error}`;
    await writer.send(protocol.fatal(message, error?.name ?? null, text)).catch(() => {});
    await writer.close();
    return process.exit(EXIT_FATAL);
  }

  const dispatcher = new Dispatcher({
    tools,
    send: (payload) => writer.send(payload),
    log,
    maxFrameSize,
    onSessionEnd: typeof module.onSessionEnd === 'function' ? module.onSessionEnd.bind(module) : null,
    workerId,
  });
  const control = openControl();
  const loop = new RequestLoop({ dispatcher, maxFrameSize, stop: (status, reason) => stop(status, reason), creditsHere: control === null });

  let stopping = null;
  stop = (status, reason) => {
    stopping ??= (async () => {
      if (reason) log.warn(`stopping: ${reason}`);
      // Whatever runs is interrupted (a stream's generator is closed); nothing queued runs.
      loop.abandon();
      if (dispatcher.running !== null) dispatcher.running.cancel();
      await loop.idle();
      if (typeof module.cleanup === 'function') {
        try {
          await module.cleanup();
        } catch (error) {
          log.warn(`cleanup failed:\n${error?.stack ?? error}`);
        }
      }
      await writer.close();
      process.exit(status);
    })();
    return stopping;
  };
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => stop(EXIT_OK, null));

  const ready = protocol.ready({ adapter: toolsPath, commands: dispatcher.commandNames(), control: CONTROL_KINDS, controlFd: control !== null });
  await writer.send(ready);
  if (control !== null) new ControlReader(dispatcher, maxFrameSize, log).attach(control);
  loop.attach(input);
}

/** The control descriptor's stream, or null without SNAKEPIT_CONTROL_FD (cancels and credits then come in the request stream). */
function openControl() {
  if (!process.env.SNAKEPIT_CONTROL_FD) return null;
  try {
    return openReadable(envInt('SNAKEPIT_CONTROL_FD', -1), 'control');
  } catch (error) {
    log.warn(`no control descriptor: ${error.message}`);
    return null;
  }
}

/** A tools module, CommonJS or ES module: {tools, initialize?, cleanup?, onSessionEnd?}. */
async function loadModule(toolsPath) {
  const namespace = await import(pathToFileURL(path.resolve(toolsPath)).href);
  return namespace.tools !== undefined ? namespace : (namespace.default ?? namespace);
}

/** The --tools option (--tools PATH or --tools=PATH); other arguments are ignored. */
function parseArgs(argv) {
  let toolsPath = path.join(__dirname, 'tools.js');
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--tools' && i + 1 < argv.length) toolsPath = argv[++i];
    else if (argv[i].startsWith('--tools=')) toolsPath = argv[i].slice('--tools='.length);
  }
  return toolsPath;
}

function envInt(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  if (!/^\d+$/.test(value)) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

main(process.argv.slice(2)).catch((error) => {
  log.warn(`crashed: ${error?.stack ?? error}`);
  process.exit(EXIT_PROTOCOL);
});
