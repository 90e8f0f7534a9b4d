'use strict';
// The messages of wire protocol v1 (docs/protocol.md): what a frame from the pool means
// (`classify`), and the payloads a worker sends.

const json = require('./json_exact');

const PROTOCOL_VERSION = 1;

// The members of a request; a frame without "command" holding any other member is a control
// frame named after that member.
const REQUEST_MEMBERS = new Set(['id', 'command', 'args', 'session_id', 'stream', 'window']);
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * What a frame from the pool means, one of:
 * - {kind: 'request', id, command, args, sessionId, stream, window}
 * - {kind: 'protocol_error', id, message}: a request to answer with a ProtocolError failure
 * - {kind: 'heartbeat', id}, {kind: 'cancel', id}, {kind: 'credit', id, credit},
 *   {kind: 'session_end', sessionId}
 * - {kind: 'control', id, name}: a control frame of a kind this worker does not act on
 * - {kind: 'ignored', reason}: no usable id, not JSON...: logged, never answered
 * Ids are BigInts (they may exceed 2**53), a window and a credit Numbers.
 */
function classify(payload) {
  let message;
  try {
    message = json.parse(UTF8.decode(payload));
  } catch (error) {
    return ignored(`not valid JSON: ${error.message}`);
  }
  if (!isObject(message)) return ignored('not a JSON object');
  const has = (member) => Object.hasOwn(message, member);
  const id = usableId(message.id);
  // Which kind wins when a frame holds several: cancel, then heartbeat, then session_end.
  if (has('cancel')) return id === null ? ignored('cancel frame without a usable id') : { kind: 'cancel', id };
  if (has('session_end') && !has('heartbeat')) {
    if (typeof message.session_id !== 'string') return ignored('session_end frame without a session id');
    return { kind: 'session_end', sessionId: message.session_id };
  }
  if (id === null) return ignored(`no usable id: ${describe(message.id)}`);
  if (has('heartbeat')) return { kind: 'heartbeat', id };
  if (has('credit')) {
    const credit = positiveInteger(message.credit);
    return credit === null ? ignored(`credit must be a positive integer, got ${describe(message.credit)}`) : { kind: 'credit', id, credit };
  }
  const { command } = message;
  const args = message.args ?? {};
  if (typeof command !== 'string' || !isObject(args)) {
    if (command === undefined || command === null) {
      const name = Object.keys(message).find((member) => !REQUEST_MEMBERS.has(member));
      if (name !== undefined) return { kind: 'control', id, name };
    }
    const reason = typeof command !== 'string'
      ? `request ${id} has no command name (got ${describe(command)})`
      : `request ${id}: args must be a JSON object, got ${describe(args)}`;
    return { kind: 'protocol_error', id, message: reason };
  }
  let window = null;
  if (message.window !== undefined && message.window !== null) {
    window = positiveInteger(message.window);
    if (window === null) {
      return { kind: 'protocol_error', id, message: `request ${id}: window must be a positive integer, got ${describe(message.window)}` };
    }
  }
  const stream = message.stream === true;
  const sessionId = typeof message.session_id === 'string' ? message.session_id : null;
  return { kind: 'request', id, command, args, sessionId, stream, window: stream ? window : null };
}

function ignored(reason) {
  return { kind: 'ignored', reason };
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function usableId(value) {
  if (typeof value === 'bigint') return value >= 0n ? value : null;
  return Number.isInteger(value) && value >= 0 ? BigInt(value) : null;
}

function positiveInteger(value) {
  if (typeof value === 'bigint') return value > 0n ? Number(value) : null;
  return Number.isInteger(value) && value > 0 ? value : null;
}

function describe(value) {
  try {
    return json.stringify(value === undefined ? null : value).slice(0, 200);
  } catch {
    return String(value);
  }
}

const encode = (text) => Buffer.from(text, 'utf8');

/** The handshake: the worker is up and takes requests. */
function ready({ pid = process.pid, adapter = null, commands, control = [], controlFd = false }) {
  const frame = { type: 'ready', protocol: PROTOCOL_VERSION, pid, adapter, commands, control };
  if (controlFd) frame.control_fd = true;
  return encode(lossy(frame));
}

/** Sent instead of ready when the worker cannot start. */
function fatal(message, errorType = null, traceback = null) {
  return encode(lossy({ type: 'fatal', message, error_type: errorType, traceback }));
}

/** A success reply; throws SerializationError if the result is not JSON. */
function success(id, result) {
  return encode(`{"id":${id},"ok":true,"result":${json.stringify(result === undefined ? null : result)}}`);
}

/** A failure reply; text that is not valid Unicode is replaced, never refused. */
function failure(id, type, message, traceback = '') {
  return encode(`{"id":${id},"ok":false,"error":${lossy({ type, message, traceback })}}`);
}

/** One item of a streamed reply, with a chunk object's marks: is_final when true, metadata when not empty. */
function chunk(id, value, { isFinal = false, metadata = null } = {}) {
  let text = `{"id":${id},"chunk":${json.stringify(value === undefined ? null : value)}`;
  if (isFinal) text += ',"is_final":true';
  if (metadata && Object.keys(metadata).length > 0) text += `,"metadata":${json.stringify(metadata)}`;
  return encode(`${text}}`);
}

/** The final reply of a stream that ended well. */
function done(id) {
  return encode(`{"id":${id},"ok":true,"result":null,"done":true}`);
}

/** JSON of a message made of plain values, lone surrogates replaced by U+FFFD. */
function lossy(message) {
  return JSON.stringify(message, (_key, value) => (typeof value === 'string' ? value.toWellFormed() : value));
}

module.exports = { PROTOCOL_VERSION, classify, ready, fatal, success, failure, chunk, done };
