'use strict';
// The worker's descriptors as Node streams.
//
// Pipes (what the pool gives: fds 3, 4 and 5) and sockets are opened as net.Socket: libuv
// watches them with epoll, reads as bytes arrive, sees end of file, and keeps no thread busy.
// fs.createReadStream would instead block one of libuv's four thread-pool threads in read(2)
// for as long as the pool sends nothing (two of them with the control descriptor), and fails
// with EAGAIN on a pipe that is in non-blocking mode. Other descriptors (a regular file, for
// tests by hand) fall back to fs streams, which suit them.

const fs = require('fs');
const net = require('net');
const { encodeFrame } = require('./framing');

/** Whether `fd` is open; throws an Error naming `role` if not. */
function checkOpen(fd, role) {
  try {
    return fs.fstatSync(fd);
  } catch (error) {
    throw new Error(`${role} fd ${fd} is not open (${error.code})`);
  }
}

/** A readable stream of `fd` (see above); throws if `fd` is not open. */
function openReadable(fd, role) {
  const stat = checkOpen(fd, role);
  if (stat.isFIFO() || stat.isSocket()) return new net.Socket({ fd, readable: true, writable: false });
  return fs.createReadStream(null, { fd, autoClose: false });
}

/**
 * Writes frames to `fd` in order, each header and payload with one write call (libuv loops on
 * partial writes, and queues what a full pipe does not take yet without blocking the worker).
 * `send(payload)` resolves once the stream may take more (its backpressure); `close()` resolves
 * once everything queued is written. `onError(error)` is called once if a write fails (EPIPE:
 * the pool is gone).
 */
class FrameWriter {
  constructor(fd, onError) {
    const stat = checkOpen(fd, 'reply');
    this.stream = stat.isFIFO() || stat.isSocket()
      ? new net.Socket({ fd, readable: false, writable: true })
      : fs.createWriteStream(null, { fd, autoClose: false });
    this.failed = null;
    this.stream.on('error', (error) => {
      if (this.failed !== null) return;
      this.failed = error;
      onError(error);
    });
  }

  send(payload) {
    if (this.failed !== null) return Promise.reject(this.failed);
    if (this.stream.write(encodeFrame(payload))) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
    });
  }

  close() {
    return new Promise((resolve) => {
      if (this.failed !== null || this.stream.writableFinished) return resolve();
      this.stream.on('close', resolve);
      this.stream.on('error', resolve);
      this.stream.end(resolve);
    });
  }
}

module.exports = { checkOpen, openReadable, FrameWriter };
