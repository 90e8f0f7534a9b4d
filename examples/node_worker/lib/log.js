'use strict';
// The worker's own log lines, on stderr (the pool logs each line; the protocol never uses it).
// Warnings are always written, as the Python bridge's; debug lines only with
// SNAKEPIT_LOG_LEVEL=debug (tests wait for them, e.g. "request 9 waits for credit after 32 chunks").

/** A logger: `warn(text)` always, `debug(text)` when `level` is "debug". */
function createLog(level = process.env.SNAKEPIT_LOG_LEVEL, write = (line) => process.stderr.write(line)) {
  const debugging = String(level ?? '').toLowerCase() === 'debug';
  return {
    debugging,
    warn: (text) => write(`[node_worker] ${text}\n`),
    debug: (text) => {
      if (debugging) write(`[node_worker] ${text}\n`);
    },
  };
}

module.exports = { createLog };
