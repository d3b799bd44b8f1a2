'use strict';
// The helpers alone: exact JSON, Struct ⇄ object, status details without a server.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { parseArgumentsJson, structToObject, valueToJs, toStruct, toValue, decodeStatusDetails, decodeStatusBytes } = require('../src');

test('parseArgumentsJson: safe numbers as JSON.parse, big integers exact', () => {
  const text = '{"a":9007199254740991,"b":9007199254740993,"c":-18446744073709551616,"d":1.5e3,"e":0.1,"f":"12345678901234567890","g":[1e400]}';
  const v = parseArgumentsJson(text);
  assert.equal(v.a, 9007199254740991);
  assert.equal(v.b, 9007199254740993n);
  assert.equal(v.c, -18446744073709551616n);
  assert.equal(v.d, 1500);
  assert.equal(v.e, 0.1);
  assert.equal(v.f, '12345678901234567890', 'a string of digits stays a string');
  assert.deepEqual(v.g, [Infinity]);
  assert.equal(parseArgumentsJson(text, { bigints: 'string' }).b, '9007199254740993');
  assert.equal(parseArgumentsJson(text, { bigints: 'number' }).b, 9007199254740992);
  assert.deepEqual(parseArgumentsJson('{"x":[1.10,2]}', { rawNumbers: true }), { x: ['1.10', '2'] });
});

test('parseArgumentsJson: the same values and errors as JSON.parse otherwise', () => {
  for (const t of ['{}', '[]', '"\\u00e9\\n\\"q"', 'null', ' {"k" : [ true , false , null , "x\\\\" ] } ', '{"__proto__":{"p":1},"n":1234567890123456}']) {
    const exact = parseArgumentsJson(t, { rawNumbers: false, bigints: 'bigint' });
    const viaExact = parseArgumentsJson(t + ' '.repeat(0), { bigints: 'string' });
    assert.deepEqual(exact, JSON.parse(t));
    assert.deepEqual(viaExact, JSON.parse(t));
  }
  const proto = parseArgumentsJson('{"__proto__":{"polluted":1},"big":99999999999999999999}');
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.deepEqual(Object.keys(proto), ['__proto__', 'big']);
  assert.equal({}.polluted, undefined);
  for (const bad of ['', '{', '{"a":1,}', '[1 2]', '01', '{"a":12345678901234567890', 'tru']) {
    assert.throws(() => parseArgumentsJson(bad), SyntaxError, bad);
  }
  assert.throws(() => parseArgumentsJson('{}', { bigints: 'float' }), TypeError);
});

test('structToObject / valueToJs / toStruct round trip', () => {
  const obj = { s: 'x', n: -2.5, b: false, z: null, l: [1, 'two', [true]], o: { deep: { er: [] } } };
  const s = toStruct(obj);
  assert.deepEqual(s.fields.n, { numberValue: -2.5 });
  assert.deepEqual(s.fields.z, { nullValue: 'NULL_VALUE' });
  assert.deepEqual(structToObject(s), obj);
  // proto-loader's shape, with the `kind` oneof name
  assert.deepEqual(valueToJs({ kind: 'listValue', listValue: { values: [{ kind: 'numberValue', numberValue: 3 }, { kind: 'nullValue', nullValue: 'NULL_VALUE' }] } }), [3, null]);
  assert.equal(structToObject(null), null);
  assert.deepEqual(toValue(42n), { numberValue: 42 });
  assert.throws(() => toValue(2n ** 60n), RangeError);
  assert.throws(() => toValue(NaN), RangeError);
  assert.throws(() => toStruct([1]), TypeError);
});

test('decodeStatusDetails: no trailer, and a trailer that is not a Status', () => {
  const { Metadata, status } = require('@grpc/grpc-js');
  const d = decodeStatusDetails({ code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded', metadata: new Metadata() });
  assert.deepEqual(d, { code: 4, codeName: 'DEADLINE_EXCEEDED', message: 'Deadline exceeded', errorInfo: null, retryInfo: null, details: [] });
  const md = new Metadata();
  md.set('grpc-status-details-bin', Buffer.from([0xff, 0xff, 0xff]));
  assert.equal(decodeStatusDetails({ code: 2, details: 'x', metadata: md }).errorInfo, null);
  assert.throws(() => decodeStatusBytes(Buffer.from([0xff, 0xff, 0xff])));
});
