'use strict';
// Cancel frames stop a running tool through its ctx.signal: the request's final reply is a
// Cancelled failure and the same process serves the next request. From the control
// descriptor (SNAKEPIT_CONTROL_FD), and from the request stream when there is none.

const test = require('node:test');
const assert = require('node:assert/strict');
const { WorkerProcess, withWorker, assertCancelled } = require('../test_support/worker_process');

const OPTIONS = { timeout: 30000 };

async function assertServesOn(worker, id) {
  assert.deepStrictEqual(await worker.call(id, 'whoami'), { id, ok: true, result: { pid: worker.pid } });
}

for (const control of [true, false]) {
  const where = control ? 'the control descriptor' : 'the request stream (no control descriptor)';
  test(`a cancel on ${where} stops a long tool; the worker keeps serving`, OPTIONS, async () => {
    const worker = await WorkerProcess.start({ control });
    const cancel = (message) => (control ? worker.sendControl(message) : worker.send(message));
    try {
      assert.equal(worker.ready.control_fd, control ? true : undefined);
      worker.send({ id: 1, command: 'wait', args: { ms: 600000 } });
      await worker.waitForOutput('tools: wait 1 started\n');
      cancel({ id: 1, cancel: true });
      assertCancelled(await worker.receive(), 1);
      await assertServesOn(worker, 2);
      // A cancel that crossed its request's reply is ignored.
      cancel({ id: 2, cancel: true });
      await assertServesOn(worker, 3);
    } finally {
      await worker.kill();
    }
  });
}

test('a cancel that comes before its request stops the request as it starts', OPTIONS, withWorker({}, async (worker) => {
  worker.send({ id: 1, command: 'wait', args: { ms: 600000 } });
  await worker.waitForOutput('tools: wait 1 started\n');
  worker.sendControl({ id: 2, cancel: true }); // request 2 is not sent yet
  worker.sendControl({ id: 1, cancel: true });
  assertCancelled(await worker.receive(), 1);
  worker.send({ id: 2, command: 'wait', args: { ms: 600000 } });
  assertCancelled(await worker.receive(), 2);
  await assertServesOn(worker, 3);
  assert.doesNotMatch(worker.output.stdout, /wait 2 started/);
}));
