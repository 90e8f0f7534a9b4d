'use strict';
// A real worker process on real pipes: handshake, calls, heartbeats, refusals, sessions, and
// each way a worker's life ends (docs/protocol.md's exit status table).

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { withWorker } = require('../test_support/worker_process');

const COMMANDS = ['add', 'count', 'describe', 'echo', 'fail', 'ping', 'progress', 'session_counter', 'wait', 'whoami'];
const OPTIONS = { timeout: 30000 }; // a broken build fails instead of hanging

test('the handshake announces the commands, the control kinds and the control descriptor', OPTIONS, withWorker({}, async (worker) => {
  assert.deepStrictEqual(worker.ready, {
    type: 'ready',
    protocol: 1,
    pid: worker.child.pid,
    adapter: path.join(__dirname, '..', 'tools.js'),
    commands: COMMANDS,
    control: ['cancel', 'credit', 'heartbeat', 'session_end'],
    control_fd: true,
  });
}));

test('calls are answered in order, heartbeats among them', OPTIONS, withWorker({}, async (worker) => {
  worker.send({ id: 1, command: 'add', args: { a: 1, b: 2 } });
  worker.send({ id: 2, heartbeat: true });
  worker.send({ id: 3, command: 'add', args: { a: 2n ** 70n, b: 1 }, session_id: null, stream: false });
  worker.send({ id: 4, command: 'whoami', args: {} });
  assert.deepStrictEqual(await worker.receive(), { id: 1, ok: true, result: 3 });
  assert.deepStrictEqual(await worker.receive(), { id: 2, ok: true, result: null });
  assert.deepStrictEqual(await worker.receive(), { id: 3, ok: true, result: 2n ** 70n + 1n });
  assert.deepStrictEqual(await worker.receive(), { id: 4, ok: true, result: { pid: worker.pid } });

  const args = { text: 'é 日本 🐍 "q" \\ \n', big: 18446744073709551615n, nested: [1, -2.5, null, { k: [] }] };
  assert.deepStrictEqual(await worker.call(5, 'echo', { args }), { id: 5, ok: true, result: args });
  const ping = (await worker.call(18446744073709551615n, 'ping')).result;
  assert.deepStrictEqual([ping.status, ping.pid, ping.worker_id], ['pong', worker.pid, 'node-test']);
  const described = (await worker.call(6, 'describe')).result;
  assert.deepStrictEqual(described.map((tool) => tool.name), COMMANDS);
  assert.deepStrictEqual(described.find((tool) => tool.name === 'count').supports_streaming, true);
}));

test('failures: tool errors, unknown commands, protocol errors, frames without a usable id', OPTIONS, withWorker({}, async (worker) => {
  const failed = await worker.call(1, 'fail', { args: { message: 'no luck' } });
  assert.deepStrictEqual([failed.ok, failed.error.type, failed.error.message], [false, 'RangeError', 'no luck']);
  assert.match(failed.error.traceback, /tools\.js/);

  const unknown = await worker.call(2, 'nope');
  assert.equal(unknown.error.type, 'UnknownCommand');
  assert.match(unknown.error.message, /unknown command 'nope'; available: add, count, /);

  assert.equal((await worker.call(3, 'echo', { args: [1, 2] })).error.type, 'ProtocolError');
  assert.equal((await worker.call(4, 'echo', { stream: true })).error.type, 'StreamingNotSupported');
  assert.equal((await worker.call(5, 'count', { args: {}, stream: true, window: 0 })).error.type, 'ProtocolError');

  // No reply for these; the next request's reply is the next frame.
  worker.send('not json');
  worker.send({ id: -1, command: 'ping' });
  worker.send({ id: 6, pause: true });
  worker.sendRaw(Buffer.from([0, 0, 0, 2, 0xc3, 0x28])); // invalid UTF-8
  assert.deepStrictEqual(await worker.call(7, 'add', { args: { a: 1, b: 1 } }), { id: 7, ok: true, result: 2 });
  await worker.waitForOutput('ignoring a frame: not valid JSON', 'stderr');
  await worker.waitForOutput('ignoring a control frame of kind "pause"', 'stderr');
}));

test('a reply larger than SNAKEPIT_MAX_FRAME_SIZE is a FrameTooLarge failure', OPTIONS, withWorker({ env: { SNAKEPIT_MAX_FRAME_SIZE: '1000' } }, async (worker) => {
  const reply = await worker.call(1, 'count', { args: { n: 500 } }); // collected: ~2 KB
  assert.deepStrictEqual([reply.ok, reply.error.type], [false, 'FrameTooLarge']);
  assert.deepStrictEqual(await worker.call(2, 'count', { args: { n: 3 } }), { id: 2, ok: true, result: [0, 1, 2] });
}));

test('a request frame larger than SNAKEPIT_MAX_FRAME_SIZE stops the worker with status 2', OPTIONS, withWorker({ env: { SNAKEPIT_MAX_FRAME_SIZE: '100' } }, async (worker) => {
  worker.sendRaw(Buffer.from([0, 0, 1, 0])); // announces 256 bytes: refused on the header
  assert.deepStrictEqual(await worker.exited, { code: 2, signal: null });
  assert.match(worker.output.stderr, /frame of 256 bytes exceeds the maximum frame size of 100 bytes/);
}));

test('end of file inside a frame is status 2', OPTIONS, withWorker({}, async (worker) => {
  worker.sendRaw(Buffer.from([0, 0, 0, 9, 123]));
  assert.deepStrictEqual(await worker.closeRequests(), { code: 2, signal: null });
  assert.match(worker.output.stderr, /end of file inside a frame payload/);
}));

test('session state lasts for the session on this worker; session_end drops it and calls the hook', OPTIONS, withWorker({}, async (worker) => {
  const count = async (id, session) => (await worker.call(id, 'session_counter', { session_id: session })).result;
  assert.deepStrictEqual([await count(1, 's1'), await count(2, 's1'), await count(3, 's2')], [1, 2, 1]);
  worker.send({ session_end: true, session_id: 's1' });
  worker.send({ session_end: true, session_id: 'never-served' });
  await worker.waitForOutput('tools: session s1 ended after 2 calls\n');
  assert.deepStrictEqual([await count(4, 's1'), await count(5, 's2')], [1, 2]);
  assert.doesNotMatch(worker.output.stdout, /never-served/);
  assert.equal((await worker.call(6, 'session_counter')).error.message, 'session_counter needs a session_id');
}));

test('end of file on the request descriptor: cleanup, status 0', OPTIONS, withWorker({}, async (worker) => {
  worker.send({ id: 1, command: 'whoami' });
  assert.deepStrictEqual(await worker.closeRequests(), { code: 0, signal: null });
  assert.deepStrictEqual(await worker.receive(), { id: 1, ok: true, result: { pid: worker.pid } });
  assert.equal(await worker.receive(), null);
  assert.match(worker.output.stdout, /tools: cleanup\n/);
}));

test('SIGTERM stops a running tool: cleanup, status 0', OPTIONS, withWorker({}, async (worker) => {
  worker.send({ id: 1, command: 'wait', args: { ms: 600000 } });
  await worker.waitForOutput('tools: wait 1 started\n');
  worker.child.kill('SIGTERM');
  assert.deepStrictEqual(await worker.exited, { code: 0, signal: null });
  assert.match(worker.output.stdout, /tools: cleanup\n/);
}));

test('pipes elsewhere than fds 3 and 4, named by SNAKEPIT_REQUEST_FD and SNAKEPIT_REPLY_FD', OPTIONS, withWorker({ fds: [7, 6] }, async (worker) => {
  assert.equal(worker.ready.type, 'ready');
  assert.deepStrictEqual(await worker.call(1, 'whoami'), { id: 1, ok: true, result: { pid: worker.pid } });
}));

test('a request descriptor that is not open is status 2', OPTIONS, withWorker({ env: { SNAKEPIT_REQUEST_FD: '900' } }, async (worker) => {
  assert.equal(worker.ready, null);
  assert.deepStrictEqual(await worker.exited, { code: 2, signal: null });
  assert.match(worker.output.stderr, /cannot start: request fd 900 is not open/);
}));

test('a tools module that cannot be loaded: a fatal frame, status 1', OPTIONS, withWorker({ args: ['--tools', 'no/such/tools.js'] }, async (worker) => {
  const { ready: fatal } = worker;
  assert.equal(fatal.type, 'fatal');
  assert.match(fatal.message, /^cannot start the tools module no\/such\/tools\.js: Cannot find module/);
  assert.equal(fatal.error_type, 'Error');
  assert.equal(typeof fatal.traceback, 'string');
  assert.deepStrictEqual(await worker.exited, { code: 1, signal: null });
}));
