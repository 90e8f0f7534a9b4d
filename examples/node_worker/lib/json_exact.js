'use strict';
// JSON that keeps integers exact (docs/protocol.md, "Integers have any size"). JSON.parse reads
// every number as a double, so 2**70 or the id 18446744073709551615 would come back rounded;
// here an integer beyond Number.MAX_SAFE_INTEGER becomes a BigInt, and a BigInt is written back
// as its decimal digits. Node 20 has neither JSON.parse's source text nor JSON.rawJSON.

class SerializationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SerializationError';
  }
}

// A run of 16 digits is the only way a text can hold an unsafe integer (2**53 has 16 digits):
// texts without one (almost all frames) take JSON.parse's fast path.
const LONG_DIGITS = /\d{16}/;
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

/** The value of JSON `text`; integers beyond 2**53 - 1 (either sign) are BigInts. Throws SyntaxError. */
function parse(text) {
  if (!LONG_DIGITS.test(text)) return JSON.parse(text);
  const parser = new Parser(text);
  const value = parser.value();
  parser.skipWhitespace();
  if (parser.at !== text.length) parser.fail('unexpected text after the value');
  return value;
}

class Parser {
  constructor(text) {
    this.text = text;
    this.at = 0;
  }

  fail(what) {
    throw new SyntaxError(`invalid JSON at position ${this.at}: ${what}`);
  }

  skipWhitespace() {
    WHITESPACE.lastIndex = this.at;
    WHITESPACE.exec(this.text);
    this.at = WHITESPACE.lastIndex;
  }

  value() {
    this.skipWhitespace();
    const c = this.text[this.at];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]]) {
      if (this.text.startsWith(word, this.at)) {
        this.at += word.length;
        return value;
      }
    }
    return this.number();
  }

  number() {
    NUMBER.lastIndex = this.at;
    const match = NUMBER.exec(this.text);
    if (match === null) this.fail('expected a value');
    this.at = NUMBER.lastIndex;
    if (match[1] !== undefined || match[2] !== undefined) return Number(match[0]);
    const number = Number(match[0]);
    return Number.isSafeInteger(number) ? number : BigInt(match[0]);
  }

  string() {
    // Find the closing quote, then let JSON.parse decode the escapes.
    let end = this.at + 1;
    for (;;) {
      const c = this.text[end];
      if (c === undefined) this.fail('unterminated string');
      if (c === '"') break;
      end += c === '\\' ? 2 : 1;
    }
    const value = JSON.parse(this.text.slice(this.at, end + 1));
    this.at = end + 1;
    return value;
  }

  array() {
    this.at += 1;
    const items = [];
    this.skipWhitespace();
    if (this.text[this.at] === ']') {
      this.at += 1;
      return items;
    }
    for (;;) {
      items.push(this.value());
      this.skipWhitespace();
      const c = this.text[this.at++];
      if (c === ']') return items;
      if (c !== ',') this.fail("expected ',' or ']'");
    }
  }

  object() {
    this.at += 1;
    const object = {};
    this.skipWhitespace();
    if (this.text[this.at] === '}') {
      this.at += 1;
      return object;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.at] !== '"') this.fail('expected a member name');
      const key = this.string();
      this.skipWhitespace();
      if (this.text[this.at++] !== ':') this.fail("expected ':'");
      // defineProperty: a member named "__proto__" is data, as with JSON.parse.
      Object.defineProperty(object, key, {
        value: this.value(),
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.skipWhitespace();
      const c = this.text[this.at++];
      if (c === '}') return object;
      if (c !== ',') this.fail("expected ',' or '}'");
    }
  }
}

/**
 * Compact JSON text of `value`, as JSON.stringify writes it (toJSON, undefined and functions
 * skipped, NaN and infinities null) but with BigInts as their digits. Throws SerializationError
 * for what the pool could not read: a value that contains itself, text that is not valid
 * Unicode (a lone surrogate), a symbol-only value.
 */
function stringify(value) {
  const text = write(value, '', new Set());
  if (text === undefined) throw new SerializationError(`${typeof value} is not a JSON value`);
  return text;
}

function write(value, key, seen) {
  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
    value = value.toJSON(key);
  }
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw new SerializationError('text is not valid Unicode (a lone surrogate)');
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      return writeContainer(value, seen);
    default:
      return undefined; // undefined, functions, symbols: left out, as JSON.stringify does
  }
}

function writeContainer(value, seen) {
  if (seen.has(value)) throw new SerializationError('the value contains itself');
  seen.add(value);
  let text;
  if (Array.isArray(value)) {
    text = `[${value.map((item, i) => write(item, String(i), seen) ?? 'null').join(',')}]`;
  } else {
    const members = [];
    for (const key of Object.keys(value)) {
      const item = write(value[key], key, seen);
      if (item !== undefined) members.push(`${write(key, '', seen)}:${item}`);
    }
    text = `{${members.join(',')}}`;
  }
  seen.delete(value);
  return text;
}

module.exports = { parse, stringify, SerializationError };
