'use strict';
// Streamed replies of a real worker: chunks then done, marks, failure after chunks, the
// credit window (back-pressure), and halting a stream by cancelling it.
//
// Nothing waits for time. With SNAKEPIT_LOG_LEVEL=debug a stream that runs out of credit says
// so on stderr ("request N waits for credit after C chunks") once it has decided to wait; from
// then on it can send nothing until a credit or a cancel. A cancel's Cancelled reply comes after
// every chunk the stream sent, on the same pipe: the chunks before it are all it sent.

const test = require('node:test');
const assert = require('node:assert/strict');
const { withWorker, assertCancelled } = require('../test_support/worker_process');

const OPTIONS = { timeout: 30000 };
const DEBUG = { SNAKEPIT_LOG_LEVEL: 'debug' };

const done = (id) => ({ id, ok: true, result: null, done: true });

function waitsAfter(worker, id, sent) {
  return worker.waitForOutput(`request ${id} waits for credit after ${sent} chunks\n`, 'stderr');
}

test('chunks in order, then done; a plain call collects the items', OPTIONS, withWorker({}, async (worker) => {
  worker.send({ id: 1, command: 'count', args: { n: 5 }, stream: true });
  assert.deepStrictEqual(await worker.rest(1), { chunks: [0, 1, 2, 3, 4], final: done(1) });
  assert.deepStrictEqual(await worker.call(2, 'count', { args: { n: 3 } }), { id: 2, ok: true, result: [0, 1, 2] });
  await worker.waitForOutput('tools: count 1 stopped after 5\n');
}));

test('chunk objects carry their marks', OPTIONS, withWorker({}, async (worker) => {
  worker.send({ id: 1, command: 'progress', args: { total: 2 }, stream: true });
  assert.deepStrictEqual(await worker.receive(), { id: 1, chunk: { step: 1, total: 2 }, metadata: { stage: 'demo', step: '1' } });
  assert.deepStrictEqual(await worker.receive(), { id: 1, chunk: { step: 2, total: 2 }, is_final: true, metadata: { stage: 'demo', step: '2' } });
  assert.deepStrictEqual(await worker.receive(), done(1));
}));

test('a failure after chunks: the chunks stand, the final reply is the failure', OPTIONS, withWorker({}, async (worker) => {
  worker.send({ id: 1, command: 'count', args: { n: 5, fail_at: 2 }, stream: true });
  const { chunks, final } = await worker.rest(1);
  assert.deepStrictEqual(chunks, [0, 1]);
  assert.deepStrictEqual([final.ok, final.error.type, final.error.message, final.done], [false, 'RangeError', 'failed at 2', undefined]);
}));

for (const control of [true, false]) {
  const where = control ? 'on the control descriptor' : 'in the request stream';
  test(`the window is honoured exactly, credits ${where}`, OPTIONS, withWorker({ control, env: DEBUG }, async (worker) => {
    const credit = (message) => (control ? worker.sendControl(message) : worker.send(message));
    worker.send({ id: 1, command: 'count', args: { n: 1000 }, stream: true, window: 3 });
    await waitsAfter(worker, 1, 3);
    credit({ id: 1, credit: 2 });
    await waitsAfter(worker, 1, 5);
    credit({ id: 1, credit: 1 });
    await waitsAfter(worker, 1, 6);
    credit({ id: 1, cancel: true });
    // Everything it sent came before the Cancelled reply: W + credits chunks, not one more.
    const { chunks, final } = await worker.rest(1);
    assert.deepStrictEqual(chunks, [0, 1, 2, 3, 4, 5]);
    assertCancelled(final, 1);
    await worker.waitForOutput('tools: count 1 stopped after 6\n');
    assert.deepStrictEqual(await worker.call(2, 'whoami'), { id: 2, ok: true, result: { pid: worker.pid } });
  }));
}

test('a stream with credits enough ends with done; the final reply needs no credit', OPTIONS, withWorker({ env: DEBUG }, async (worker) => {
  worker.send({ id: 1, command: 'count', args: { n: 4 }, stream: true, window: 2 });
  await waitsAfter(worker, 1, 2);
  worker.sendControl({ id: 1, credit: 2 });
  assert.deepStrictEqual(await worker.rest(1), { chunks: [0, 1, 2, 3], final: done(1) });
  // A credit that crossed the stream's end is dropped.
  worker.sendControl({ id: 1, credit: 5 });
  worker.send({ id: 2, command: 'count', args: { n: 3 }, stream: true, window: 1 });
  await waitsAfter(worker, 2, 1);
  worker.sendControl({ id: 2, cancel: true });
  const { chunks, final } = await worker.rest(2);
  assert.deepStrictEqual(chunks, [0]);
  assertCancelled(final, 2);
}));

test('halting a running stream closes its generator (its finally runs) and the worker serves on', OPTIONS, withWorker({}, async (worker) => {
  worker.send({ id: 1, command: 'count', args: { n: 1e12 }, stream: true });
  assert.deepStrictEqual(await worker.receive(), { id: 1, chunk: 0 });
  worker.sendControl({ id: 1, cancel: true });
  const { chunks, final } = await worker.rest(1);
  assertCancelled(final, 1);
  await worker.waitForOutput('tools: count 1 stopped after ');
  assert.deepStrictEqual(await worker.call(2, 'whoami'), { id: 2, ok: true, result: { pid: worker.pid } });
}));

test('the control descriptor closing stops a stream waiting for credit; end of file exits 0', OPTIONS, withWorker({ env: DEBUG }, async (worker) => {
  worker.send({ id: 1, command: 'count', args: { n: 100 }, stream: true, window: 2 });
  await waitsAfter(worker, 1, 2);
  assert.deepStrictEqual(await worker.closeRequests(), { code: 0, signal: null });
  const { chunks, final } = await worker.rest(1);
  assert.deepStrictEqual(chunks, [0, 1]);
  assertCancelled(final, 1);
  assert.match(worker.output.stdout, /tools: count 1 stopped after 2\ntools: cleanup\n/);
}));

test('SIGTERM during a stream closes its generator, then cleanup and status 0', OPTIONS, withWorker({ env: DEBUG }, async (worker) => {
  worker.send({ id: 1, command: 'count', args: { n: 100 }, stream: true, window: 1 });
  await waitsAfter(worker, 1, 1);
  worker.child.kill('SIGTERM');
  assert.deepStrictEqual(await worker.exited, { code: 0, signal: null });
  assert.match(worker.output.stdout, /tools: count 1 stopped after 1\ntools: cleanup\n/);
}));
