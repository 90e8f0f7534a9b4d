'use strict';
// The control descriptor (SNAKEPIT_CONTROL_FD): the pool writes cancel and credit frames there
// so that they reach a running tool. Node reads it on the event loop, beside the request
// descriptor: no thread is needed, since tools are asynchronous (a tool that blocks the event
// loop cannot see a cancel, and is killed after the pool's cancel_grace).

const { FrameDecoder } = require('./framing');
const protocol = require('./protocol');

class ControlReader {
  /**
   * Routes the frames of `stream` to `target` (`cancel(id)`, `credit(id, count)`,
   * `closeCredits()`); other kinds and invalid frames are logged and skipped. End of file or a
   * broken frame ends the channel: no stream waits for credit any more.
   */
  constructor(target, maxFrameSize, log) {
    this.target = target;
    this.decoder = new FrameDecoder(maxFrameSize);
    this.log = log;
    this.closed = false;
  }

  /** Reads `stream` until it ends. */
  attach(stream) {
    stream.on('data', (bytes) => {
      if (this.closed) return;
      try {
        for (const payload of this.decoder.push(bytes)) this.route(payload);
      } catch (error) {
        this.close(error.message);
        stream.destroy();
      }
    });
    stream.on('end', () => {
      try {
        this.decoder.end();
        this.close(null);
      } catch (error) {
        this.close(error.message);
      }
    });
    stream.on('error', (error) => this.close(error.message));
  }

  /** One control frame's payload. */
  route(payload) {
    const message = protocol.classify(payload);
    if (message.kind === 'cancel') {
      this.target.cancel(message.id);
    } else if (message.kind === 'credit') {
      this.target.credit(message.id, message.credit);
    } else {
      const what = message.kind === 'ignored' ? message.reason : `a ${message.kind} frame`;
      this.log.warn(`ignoring a control frame: ${what}`);
    }
  }

  close(reason) {
    if (this.closed) return;
    this.closed = true;
    if (reason !== null) this.log.warn(`control channel closed: ${reason}`);
    this.target.closeCredits();
  }
}

module.exports = { ControlReader };
