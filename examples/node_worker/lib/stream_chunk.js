'use strict';

/**
 * A streamed item with marks (docs/protocol.md, "Chunk marks"), as upstream's StreamChunk:
 * `data` is sent as the chunk, plus "is_final":true when `isFinal`, and "metadata" (keys and
 * values made strings) when `metadata` is not empty. `isFinal` is only a mark: the stream
 * still ends when the generator does. Other items are sent as they are.
 */
class StreamChunk {
  constructor(data, { isFinal = false, metadata = null } = {}) {
    this.data = data;
    this.isFinal = Boolean(isFinal);
    this.metadata = metadata;
  }

  /** The marks to encode: {isFinal, metadata (an object of strings, or null)}. */
  marks() {
    const entries = this.metadata ? Object.entries(this.metadata) : [];
    const metadata = entries.length > 0
      ? Object.fromEntries(entries.map(([key, value]) => [key, String(value)]))
      : null;
    return { isFinal: this.isFinal, metadata };
  }
}

module.exports = { StreamChunk };
