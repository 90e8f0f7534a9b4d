'use strict';
// The golden vectors of docs/protocol_vectors.json against the worker's own code, as
// priv/python/snakepit_bridge_tests/test_vectors.py checks them against the Python bridge: it
// reads every frame the pool may send to the meaning the vector states (or refuses it as
// stated), and encodes every frame a worker sends to the vector's exact bytes.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const json = require('../lib/json_exact');
const protocol = require('../lib/protocol');
const { FrameDecoder, FrameTooLarge, encodeFrame } = require('../lib/framing');
const { ControlReader } = require('../lib/control_reader');
const { Dispatcher } = require('../lib/dispatcher');
const { RequestLoop } = require('../lib/request_loop');
const { collectTools } = require('../lib/tool_registry');

const VECTORS = path.join(__dirname, '..', '..', '..', 'docs', 'protocol_vectors.json');
// Room enough for every valid vector.
const MAX_FRAME = 1 << 20;
const CASES = json.parse(fs.readFileSync(VECTORS, 'utf8')).cases;
const poolToWorker = CASES.filter((c) => c.direction === 'pool_to_worker');

function recordingLog() {
  const lines = [];
  return { lines, debugging: false, warn: (text) => lines.push(text), debug: () => {} };
}

/** The payload of the vector's frame, read by the worker's framing: one whole frame. */
function read(vector, maxFrame = vector.max_frame ?? MAX_FRAME) {
  const payloads = new FrameDecoder(maxFrame).push(Buffer.from(vector.frame, 'hex'));
  assert.equal(payloads.length, 1, 'one whole frame');
  return payloads[0];
}

/**
 * Feeds the vector's frame to a worker whose only tool is the vector's command: a streaming
 * tool recording each call and yielding one item, so its replies tell whether the request
 * asked for a stream. Returns {calls, replies, logged, stopped}.
 */
async function handle(vector) {
  const calls = [];
  async function* record(args, ctx) {
    calls.push({ args, sessionId: ctx.sessionId });
    yield 'item';
  }
  const command = vector.meaning?.command ?? 'unused';
  const replies = [];
  const log = recordingLog();
  const dispatcher = new Dispatcher({
    tools: collectTools({ tools: { [command]: record } }),
    send: async (payload) => replies.push(json.parse(payload.toString('utf8'))),
    log,
    maxFrameSize: MAX_FRAME,
  });
  let stopped = null;
  const loop = new RequestLoop({ dispatcher, maxFrameSize: vector.max_frame ?? MAX_FRAME, stop: (status) => (stopped = status), creditsHere: false });
  loop.push(Buffer.from(vector.frame, 'hex'));
  await loop.idle();
  return { calls, replies, logged: log.lines, stopped };
}

test('valid requests reach the tool with their args and session, and are answered', async (t) => {
  for (const vector of poolToWorker.filter((c) => c.kind === 'request' && c.valid)) {
    await t.test(vector.name, async () => {
      const { meaning } = vector;
      const { calls, replies } = await handle(vector);
      const args = meaning.args ?? {};
      // Exact types too: 2**70 must arrive as a BigInt, not a rounded double.
      assert.deepStrictEqual(calls, [{ args, sessionId: meaning.session_id }]);
      assert.equal(json.stringify(calls[0].args), json.stringify(args));
      assert.equal(protocol.classify(read(vector)).window, meaning.window ?? null);
      const id = meaning.id;
      const expected = meaning.stream
        ? [{ id, chunk: 'item' }, { id, ok: true, result: null, done: true }]
        : [{ id, ok: true, result: ['item'] }];
      assert.deepStrictEqual(replies, expected);
    });
  }
});

test('heartbeats are answered by the worker, never by a tool', async (t) => {
  for (const vector of poolToWorker.filter((c) => c.kind === 'heartbeat' && c.valid)) {
    await t.test(vector.name, async () => {
      const { calls, replies } = await handle(vector);
      assert.deepStrictEqual(calls, []);
      assert.deepStrictEqual(replies, [{ id: vector.meaning.id, ok: true, result: null }]);
    });
  }
});

test('the control reader routes cancels and credits; invalid ones are logged and dropped', async (t) => {
  const vectors = poolToWorker.filter((c) => c.kind === 'cancel' || c.kind === 'credit');
  assert.ok(vectors.length > 4);
  for (const vector of vectors) {
    await t.test(vector.name, () => {
      const routed = [];
      const target = {
        cancel: (id) => routed.push(['cancel', id]),
        credit: (id, count) => routed.push(['credit', id, count]),
        closeCredits: () => routed.push(['closeCredits']),
      };
      const log = recordingLog();
      new ControlReader(target, MAX_FRAME, log).route(read(vector));
      if (!vector.valid) {
        assert.deepStrictEqual(routed, []);
        assert.equal(log.lines.length, 1);
      } else if (vector.kind === 'cancel') {
        assert.deepStrictEqual(routed, [['cancel', BigInt(vector.meaning.id)]]);
      } else {
        assert.deepStrictEqual(routed, [['credit', BigInt(vector.meaning.id), vector.meaning.credit]]);
      }
    });
  }
});

test('control frames get no reply and run no tool', async (t) => {
  const kinds = new Set(['cancel', 'control', 'session_end', 'credit']);
  const vectors = poolToWorker.filter((c) => kinds.has(c.kind));
  assert.ok(vectors.length > 0);
  for (const vector of vectors) {
    await t.test(vector.name, async () => {
      const { calls, replies, stopped } = await handle(vector);
      assert.deepStrictEqual({ calls, replies, stopped }, { calls: [], replies: [], stopped: null });
    });
  }
});

test('control frames parse to their kind and id', () => {
  for (const vector of poolToWorker.filter((c) => c.valid && c.kind !== 'request' && c.kind !== 'frame')) {
    const message = protocol.classify(read(vector));
    const { meaning } = vector;
    assert.equal(message.kind, vector.kind, vector.name);
    if (meaning.id !== undefined) assert.equal(message.id, BigInt(meaning.id), vector.name);
    if (meaning.kind !== undefined) assert.equal(message.name, meaning.kind, vector.name);
    if (meaning.session_id !== undefined) assert.equal(message.sessionId, meaning.session_id, vector.name);
    if (meaning.credit !== undefined) assert.equal(message.credit, meaning.credit, vector.name);
  }
});

test('invalid frames are refused as the vectors say', async (t) => {
  for (const vector of poolToWorker.filter((c) => !c.valid)) {
    await t.test(vector.name, async () => {
      const { refusal } = vector;
      if (refusal === 'frame_too_large') {
        assert.throws(() => read(vector), FrameTooLarge);
        // Refused on the header alone: before its payload arrives.
        const header = Buffer.from(vector.frame, 'hex').subarray(0, 4);
        assert.throws(() => new FrameDecoder(vector.max_frame).push(header), FrameTooLarge);
        const { replies, stopped } = await handle(vector);
        assert.deepStrictEqual({ replies, stopped }, { replies: [], stopped: 2 });
        return;
      }
      const { calls, replies, logged } = await handle(vector);
      assert.deepStrictEqual(calls, []);
      if (refusal === 'ignored') {
        assert.deepStrictEqual(replies, []);
        assert.equal(logged.length, 1, 'logged once');
      } else {
        assert.equal(refusal, 'protocol_error');
        assert.equal(replies.length, 1);
        const [reply] = replies;
        assert.deepStrictEqual([reply.id, reply.ok, reply.error.type], [vector.meaning.id, false, 'ProtocolError']);
      }
    });
  }
});

/** The payload the worker writes for a worker_to_pool vector's meaning. */
function encode(vector) {
  const { meaning } = vector;
  if (vector.kind === 'handshake') {
    if (meaning.type === 'ready') {
      const { pid, adapter, commands, control } = meaning;
      return protocol.ready({ pid, adapter, commands, control, controlFd: meaning.control_fd ?? false });
    }
    return protocol.fatal(meaning.message, meaning.error_type, meaning.traceback);
  }
  switch (meaning.outcome) {
    case 'ok':
      return protocol.success(meaning.id, meaning.result);
    case 'error':
      return protocol.failure(meaning.id, meaning.error.type, meaning.error.message, meaning.error.traceback);
    case 'chunk':
      return protocol.chunk(meaning.id, meaning.chunk, { isFinal: meaning.is_final ?? false, metadata: meaning.metadata ?? null });
    default:
      assert.equal(meaning.outcome, 'done');
      return protocol.done(meaning.id);
  }
}

test('every frame a worker sends is encoded to the exact bytes of its vector', async (t) => {
  const vectors = CASES.filter((c) => c.direction === 'worker_to_pool' && c.valid && !c.parse_only);
  assert.ok(vectors.length > 10);
  for (const vector of vectors) {
    await t.test(vector.name, () => {
      const payload = encode(vector);
      assert.deepStrictEqual(json.parse(payload.toString('utf8')), json.parse(vector.payload));
      assert.equal(encodeFrame(payload).toString('hex'), vector.frame);
    });
  }
});
