'use strict';
// Exact JSON and framing on their own: what the vectors do not reach.

const test = require('node:test');
const assert = require('node:assert/strict');
const json = require('../lib/json_exact');
const { FrameDecoder, FrameError, encodeFrame } = require('../lib/framing');

test('integers keep their exact value both ways; other numbers are doubles', () => {
  const text = '{"a":-18446744073709551616,"b":9007199254740991,"c":1234567890123456.5,"d":[1e300,-0.25]}';
  const value = json.parse(text);
  assert.deepStrictEqual(value, { a: -18446744073709551616n, b: 9007199254740991, c: 1234567890123456.5, d: [1e300, -0.25] });
  assert.equal(json.stringify(value), '{"a":-18446744073709551616,"b":9007199254740991,"c":1234567890123456.5,"d":[1e+300,-0.25]}');
});

test('the exact parser reads what JSON.parse reads, and refuses what it refuses', () => {
  const text = ' { "__proto__" : {"x": 1}, "s": "\\u00e9\\"\\\\ 12345678901234567" , "t":[true,false,null,{}] } ';
  const value = json.parse(text);
  assert.deepStrictEqual(value, JSON.parse(text));
  assert.equal(Object.getPrototypeOf(value), Object.prototype, 'a "__proto__" member is data');
  for (const bad of ['[12345678901234567,]', '{"a":12345678901234567', '12345678901234567 x', '[01234567890123456]', '"12345678901234567']) {
    assert.throws(() => json.parse(bad), SyntaxError, bad);
  }
});

test('values the pool cannot read are a SerializationError; others follow JSON.stringify', () => {
  const cycle = { a: [] };
  cycle.a.push(cycle);
  assert.throws(() => json.stringify(cycle), { name: 'SerializationError', message: /contains itself/ });
  assert.throws(() => json.stringify({ s: 'a\ud800b' }), { name: 'SerializationError', message: /lone surrogate/ });
  const shared = [1];
  const value = { d: new Date(0), u: undefined, f: () => 1, n: NaN, list: [undefined, shared, shared] };
  assert.equal(json.stringify(value), JSON.stringify(value));
});

test('frames arrive whatever the pieces; a stream cut inside a frame is an error', () => {
  const frames = [Buffer.from('{"id":1}'), Buffer.alloc(0), Buffer.from('é'.repeat(100))].map(encodeFrame);
  const bytes = Buffer.concat(frames);
  const decoder = new FrameDecoder(1000);
  const payloads = [];
  for (const byte of bytes) payloads.push(...decoder.push(Buffer.from([byte])));
  assert.deepStrictEqual(payloads.map((p) => p.toString()), ['{"id":1}', '', 'é'.repeat(100)]);
  decoder.end();
  const cut = new FrameDecoder(1000);
  cut.push(bytes.subarray(0, 6));
  assert.throws(() => cut.end(), FrameError);
});
