'use strict';
// The request the worker runs, and how the pool's control frames reach it: a cancel aborts
// its AbortSignal (the tool's ctx.signal), and a stream's credits let chunks through.

/** What a cancelled request fails with: its final reply is a `Cancelled` failure. */
class Cancelled extends Error {
  constructor(id) {
    super(`request ${id} was cancelled by the pool`);
    this.name = 'Cancelled';
  }
}

class RunningCall {
  /** Request `id`; a stream with a `window` may send that many chunks before it needs credit. */
  constructor(id, window = null) {
    this.id = id;
    this.controller = new AbortController();
    this.signal = this.controller.signal;
    // Chunks the stream may still send; null without a window (no limit).
    this.credits = window;
    this.sent = 0;
    this.creditsClosed = false;
    this.wake = null;
    // Rejects with Cancelled once the call is cancelled; raced against the tool.
    this.aborted = new Promise((_resolve, reject) => {
      this.signal.addEventListener('abort', () => reject(this.signal.reason), { once: true });
    });
    this.aborted.catch(() => {}); // nobody may be racing it when the cancel comes
  }

  get cancelled() {
    return this.signal.aborted;
  }

  /** Stops the call (once): the tool's signal aborts, a credit wait ends. */
  cancel() {
    if (this.cancelled) return false;
    this.controller.abort(new Cancelled(this.id));
    this.notify();
    return true;
  }

  /** The pool's consumer took `count` more chunks. */
  credit(count) {
    if (this.credits === null) return false;
    this.credits += count;
    this.notify();
    return true;
  }

  /** No credit can come any more (the channel carrying them ended): a credit wait stops. */
  closeCredits() {
    this.creditsClosed = true;
    this.notify();
  }

  /**
   * Takes one credit before a chunk is sent, waiting (without a timer) while the window is used
   * up; throws Cancelled if the call is cancelled first or no credit can come any more.
   */
  async takeCredit(log) {
    if (this.credits === 0) {
      log.debug(`request ${this.id} waits for credit after ${this.sent} chunks`);
      while (this.credits === 0 && !this.cancelled && !this.creditsClosed) {
        await new Promise((resolve) => {
          this.wake = resolve;
        });
      }
      if (this.credits === 0) this.cancel();
    }
    if (this.cancelled) throw this.signal.reason;
    if (this.credits !== null) this.credits -= 1;
    this.sent += 1;
  }

  /** `promise`, or Cancelled as soon as the call is cancelled, whichever comes first. */
  race(promise) {
    promise.catch(() => {}); // an abandoned tool's late failure is nobody's concern
    return Promise.race([promise, this.aborted]);
  }

  notify() {
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }
}

module.exports = { Cancelled, RunningCall };
