'use strict';
// Length-prefixed frames: a 4-byte big-endian length, then that many bytes (Erlang's
// {packet, 4}). Knows nothing of JSON.

const HEADER_SIZE = 4;
const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024;

class FrameError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FrameError';
  }
}

/** A header announces more bytes than the maximum; thrown before the payload is read. */
class FrameTooLarge extends FrameError {
  constructor(size, maxSize, what = 'frame') {
    super(`${what} of ${size} bytes exceeds the maximum frame size of ${maxSize} bytes`);
    this.name = 'FrameTooLarge';
    this.size = size;
    this.maxSize = maxSize;
  }
}

/**
 * Cuts a byte stream into frame payloads, whatever the pieces it arrives in: `push(bytes)`
 * returns the payloads completed by those bytes; `end()` throws if the stream stopped inside a
 * frame. An oversized header throws FrameTooLarge at once: nothing of its payload is buffered.
 */
class FrameDecoder {
  constructor(maxSize = DEFAULT_MAX_FRAME_SIZE) {
    this.maxSize = maxSize;
    this.pieces = [];
    this.buffered = 0;
    this.needed = null; // payload size of the frame being read, once its header is in
  }

  push(bytes) {
    this.pieces.push(bytes);
    this.buffered += bytes.length;
    const payloads = [];
    for (;;) {
      if (this.needed === null) {
        if (this.buffered < HEADER_SIZE) break;
        const size = this.take(HEADER_SIZE).readUInt32BE(0);
        if (size > this.maxSize) throw new FrameTooLarge(size, this.maxSize);
        this.needed = size;
      }
      if (this.buffered < this.needed) break;
      payloads.push(this.take(this.needed));
      this.needed = null;
    }
    return payloads;
  }

  /** The stream ended: fine between frames, a FrameError inside one. */
  end() {
    if (this.needed !== null || this.buffered > 0) {
      const part = this.needed === null ? 'header' : 'payload';
      throw new FrameError(`end of file inside a frame ${part}`);
    }
  }

  take(count) {
    const all = this.pieces.length === 1 ? this.pieces[0] : Buffer.concat(this.pieces);
    this.pieces = count < all.length ? [all.subarray(count)] : [];
    this.buffered -= count;
    return all.subarray(0, count);
  }
}

/** Header and payload as one buffer, so that a frame is written with one write. */
function encodeFrame(payload) {
  if (payload.length > 0xffffffff) throw new FrameTooLarge(payload.length, 0xffffffff);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  payload.copy(frame, HEADER_SIZE);
  return frame;
}

module.exports = { HEADER_SIZE, DEFAULT_MAX_FRAME_SIZE, FrameError, FrameTooLarge, FrameDecoder, encodeFrame };
