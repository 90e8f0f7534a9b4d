'use strict';
// Runs worker.js as a child process the way the pool does: real pipes (FIFOs, since Node's
// own "pipe" stdio gives socket pairs) on fds 3 (requests), 4 (replies) and, with `control`,
// 5 (SNAKEPIT_CONTROL_FD); stdout and stderr are pipes the test reads. Everything here waits
// for events (a frame, a line of output, the exit), never for time.

const assert = require('node:assert/strict');
const cp = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const json = require('../lib/json_exact');
const { FrameDecoder, encodeFrame } = require('../lib/framing');

const WORKER = path.join(__dirname, '..', 'worker.js');
const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;

/** A pipe's two ends as fds: [read, write]. */
function pipe(dir, name) {
  const fifo = path.join(dir, name);
  cp.execFileSync('mkfifo', [fifo]);
  const read = fs.openSync(fifo, O_RDONLY | O_NONBLOCK); // does not wait for a writer
  const write = fs.openSync(fifo, O_WRONLY);
  fs.unlinkSync(fifo);
  return [read, write];
}

class WorkerProcess {
  /**
   * `args`: worker.js's arguments; `env`: more variables; `control`: give it a control pipe;
   * `fds`: where the request and reply ends go in the child ([3, 4] as the pool puts them;
   * others are named by SNAKEPIT_REQUEST_FD / SNAKEPIT_REPLY_FD).
   */
  constructor({ args = [], env = {}, control = true, fds = [3, 4] } = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-worker-'));
    const [requestRead, requestWrite] = pipe(dir, 'requests');
    const [replyRead, replyWrite] = pipe(dir, 'replies');
    const [controlRead, controlWrite] = control ? pipe(dir, 'control') : [null, null];
    fs.rmdirSync(dir);
    const stdio = ['ignore', 'pipe', 'pipe'];
    const place = (fd, end) => {
      while (stdio.length < fd) stdio.push('ignore');
      stdio[fd] = end;
    };
    place(fds[0], requestRead);
    place(fds[1], replyWrite);
    const environment = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SNAKEPIT_')));
    Object.assign(environment, { SNAKEPIT_PROTOCOL: '1', SNAKEPIT_WORKER_ID: 'node-test' });
    if (fds[0] !== 3 || fds[1] !== 4) {
      Object.assign(environment, { SNAKEPIT_REQUEST_FD: String(fds[0]), SNAKEPIT_REPLY_FD: String(fds[1]) });
    }
    if (control) {
      place(5, controlRead);
      environment.SNAKEPIT_CONTROL_FD = '5';
    }
    this.child = cp.spawn(process.execPath, [WORKER, ...args], { stdio, env: { ...environment, ...env } });
    for (const fd of [requestRead, replyWrite, controlRead]) if (fd !== null) fs.closeSync(fd);
    this.requests = new net.Socket({ fd: requestWrite, readable: false, writable: true });
    this.control = control ? new net.Socket({ fd: controlWrite, readable: false, writable: true }) : null;
    for (const socket of [this.requests, this.control]) socket?.on('error', () => {}); // EPIPE once it exits
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));

    this.frames = [];
    this.waiters = [];
    this.replyEnded = false;
    const decoder = new FrameDecoder(1 << 30);
    const replies = new net.Socket({ fd: replyRead, readable: true, writable: false });
    replies.on('data', (bytes) => {
      for (const payload of decoder.push(bytes)) this.frames.push(json.parse(payload.toString('utf8')));
      this.wakeUp();
    });
    replies.on('end', () => {
      this.replyEnded = true;
      this.wakeUp();
    });
    this.output = { stdout: '', stderr: '' };
    this.outputEnded = { stdout: false, stderr: false };
    for (const stream of ['stdout', 'stderr']) {
      this.child[stream].setEncoding('utf8');
      this.child[stream].on('data', (text) => {
        this.output[stream] += text;
        this.wakeUp();
      });
      this.child[stream].on('end', () => {
        this.outputEnded[stream] = true;
        this.wakeUp();
      });
    }
  }

  /** Starts a worker and reads its handshake (`this.ready`). */
  static async start(options) {
    const worker = new WorkerProcess(options);
    worker.ready = await worker.receive();
    worker.pid = worker.ready?.pid;
    return worker;
  }

  wakeUp() {
    for (const check of [...this.waiters]) check();
  }

  /** Resolves once `condition()` is true, re-checked on every frame, output and end of file. */
  until(condition, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let value;
        try {
          value = condition();
        } catch (error) {
          reject(error);
          return;
        }
        if (value === undefined) {
          if (this.replyEnded && this.frames.length === 0 && what !== 'output') {
            this.waiters.splice(this.waiters.indexOf(check), 1);
            resolve(null);
          }
          return;
        }
        this.waiters.splice(this.waiters.indexOf(check), 1);
        resolve(value);
      };
      this.waiters.push(check);
      check();
    });
  }

  /** The next reply frame (parsed, big integers as BigInts), or null at end of file. */
  receive() {
    return this.until(() => (this.frames.length > 0 ? this.frames.shift() : undefined), 'frame');
  }

  /** Waits until the worker has written `text` on `stream` ("stdout" or "stderr"). */
  waitForOutput(text, stream = 'stdout') {
    return this.until(() => {
      if (this.output[stream].includes(text)) return true;
      if (this.outputEnded[stream]) throw new Error(`no ${JSON.stringify(text)} on ${stream}; got ${JSON.stringify(this.output[stream])}`);
      return undefined;
    }, 'output');
  }

  send(message) {
    this.sendRaw(encodeFrame(Buffer.from(typeof message === 'string' ? message : json.stringify(message))));
  }

  sendControl(message) {
    this.control.write(encodeFrame(Buffer.from(json.stringify(message))));
  }

  sendRaw(bytes) {
    this.requests.write(bytes);
  }

  async call(id, command, fields = {}) {
    this.send({ id, command, ...fields });
    return this.receive();
  }

  /** The chunks of stream `id` up to its final reply: {chunks, final}. */
  async rest(id) {
    const chunks = [];
    for (;;) {
      const reply = await this.receive();
      assert.ok(reply !== null && reply.id === id, `expected a reply to ${id}, got ${json.stringify(reply)}`);
      if (!('chunk' in reply)) return { chunks, final: reply };
      chunks.push(reply.chunk);
    }
  }

  /** Closes the request pipe (and the control pipe): the worker's normal shutdown. */
  closeRequests() {
    this.requests.end();
    this.control?.end();
    return this.exited;
  }

  /** Makes sure the child is gone (test clean-up). */
  async kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    this.requests.destroy();
    this.control?.destroy();
  }
}

/** A test body run with a started worker (`options` as WorkerProcess's), killed afterwards whatever happened. */
function withWorker(options, body) {
  return async () => {
    const worker = await WorkerProcess.start(options);
    try {
      await body(worker);
    } finally {
      await worker.kill();
    }
  };
}

/** `reply` is the Cancelled failure of request `id`. */
function assertCancelled(reply, id) {
  assert.deepStrictEqual([reply.id, reply.ok, reply.error.type], [id, false, 'Cancelled']);
  assert.equal(reply.error.message, `request ${id} was cancelled by the pool`);
}

module.exports = { WorkerProcess, withWorker, assertCancelled };
