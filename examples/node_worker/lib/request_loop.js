'use strict';
// The request descriptor: frames are read as they arrive and answered one at a time, in order.
// Cancel and credit frames found there (the pool sends them there to a worker without a
// control descriptor) reach the running request at once, since Node reads this descriptor
// while a tool runs. End of file, once every earlier request is answered, stops the worker
// with status 0; a malformed or oversized frame with status 2.

const { FrameDecoder } = require('./framing');
const protocol = require('./protocol');

const EXIT_OK = 0;
const EXIT_PROTOCOL = 2;

class RequestLoop {
  /**
   * `dispatcher`: handles messages and takes cancels and credits; `stop(status, reason)`:
   * called once, when the stream ends (after the messages before the end are handled);
   * `creditsHere`: whether credits come in this stream (no control descriptor), so that its
   * end stops a stream waiting for credit.
   */
  constructor({ dispatcher, maxFrameSize, stop, creditsHere }) {
    this.dispatcher = dispatcher;
    this.decoder = new FrameDecoder(maxFrameSize);
    this.stop = stop;
    this.creditsHere = creditsHere;
    this.queue = [];
    this.busy = false;
    this.ended = false;
    this.idleWaiters = [];
  }

  /** Reads `stream` until it ends. */
  attach(stream) {
    this.source = stream;
    stream.on('data', (bytes) => this.push(bytes));
    stream.on('end', () => this.end());
    stream.on('error', (error) => this.finish(EXIT_PROTOCOL, `request fd: ${error.message}`));
  }

  /** Bytes from the request stream. */
  push(bytes) {
    if (this.ended) return;
    let payloads;
    try {
      payloads = this.decoder.push(bytes);
    } catch (error) {
      this.finish(EXIT_PROTOCOL, error.message);
      return;
    }
    for (const payload of payloads) this.accept(payload);
  }

  /** One frame's payload: a cancel or credit acts now, anything else waits its turn. */
  accept(payload) {
    const message = protocol.classify(payload);
    if (message.kind === 'cancel') {
      this.dispatcher.cancel(message.id);
    } else if (message.kind === 'credit') {
      this.dispatcher.credit(message.id, message.credit);
    } else {
      this.enqueue(message);
    }
  }

  /** End of file on the request stream. */
  end() {
    try {
      this.decoder.end();
    } catch (error) {
      this.finish(EXIT_PROTOCOL, error.message);
      return;
    }
    this.finish(EXIT_OK, null);
  }

  /** Stops reading; `stop(status, reason)` follows once the messages read so far are handled. */
  finish(status, reason) {
    if (this.ended) return;
    this.ended = true;
    if (this.source && status !== EXIT_OK) this.source.destroy();
    if (this.creditsHere) this.dispatcher.closeCredits();
    this.enqueue({ kind: 'stop', status, reason });
  }

  enqueue(message) {
    this.queue.push(message);
    if (!this.busy) this.drain();
  }

  async drain() {
    this.busy = true;
    while (this.queue.length > 0) {
      const message = this.queue.shift();
      if (message.kind === 'stop') {
        this.queue = [];
        this.stop(message.status, message.reason);
        break;
      }
      try {
        await this.dispatcher.handle(message);
      } catch (error) {
        // Only writing the reply can fail here (the pool is gone): the writer reports it.
        this.dispatcher.log.warn(`handling a ${message.kind} failed: ${error?.message ?? error}`);
      }
    }
    this.busy = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Stops at once (SIGTERM): nothing more is read, nothing queued runs. */
  abandon() {
    this.ended = true;
    this.queue = [];
    if (this.source) this.source.pause();
  }

  /** Resolves once every message read so far is handled (for tests driving it directly). */
  idle() {
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

module.exports = { RequestLoop, EXIT_OK, EXIT_PROTOCOL };
