'use strict';
// google.protobuf.Struct / Value ⇄ plain JS values, and the exact JSON of
// tool-call arguments.
//
// proto-loader hands a Struct over as its protobuf shape,
// `{fields: {city: {stringValue: 'Paris', kind: 'stringValue'}}}`;
// `structToObject` turns it into `{city: 'Paris'}`, `toStruct` the other way
// (for `tools[].parameters`, `responseFormat.schema`, `providerOptions`).

const KINDS = ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'];
const MAX_DEPTH = 100;

/** A google.protobuf.Value (as proto-loader decodes it) → a plain JS value. */
function valueToJs(v, depth = 0) {
  if (v === null || v === undefined) return null;
  if (depth > MAX_DEPTH) throw new RangeError('Struct nested too deeply');
  const kind = v.kind || KINDS.find((k) => v[k] !== undefined && v[k] !== null);
  switch (kind) {
    case 'nullValue':
    case undefined:
      return null;
    case 'numberValue':
      return Number(v.numberValue);
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return Boolean(v.boolValue);
    case 'structValue':
      return structToObject(v.structValue, depth + 1);
    case 'listValue':
      return ((v.listValue && v.listValue.values) || []).map((x) => valueToJs(x, depth + 1));
    default:
      throw new TypeError(`unknown google.protobuf.Value kind ${kind}`);
  }
}

/** A google.protobuf.Struct (as proto-loader decodes it) → a plain object. Absent → null. */
function structToObject(s, depth = 0) {
  if (s === null || s === undefined) return null;
  if (depth > MAX_DEPTH) throw new RangeError('Struct nested too deeply');
  const out = {};
  for (const [k, v] of Object.entries(s.fields || {})) out[k] = valueToJs(v, depth + 1);
  return out;
}

/**
 * A plain JS value → google.protobuf.Value. Numbers must be finite (Value
 * holds a double: a BigInt beyond 2^53 cannot be sent exactly in a Struct —
 * send tool-call arguments as `argumentsJson` text instead).
 */
function toValue(x, depth = 0) {
  if (depth > MAX_DEPTH) throw new RangeError('value nested too deeply');
  if (x === null || x === undefined) return { nullValue: 'NULL_VALUE' };
  switch (typeof x) {
    case 'number':
      if (!Number.isFinite(x)) throw new RangeError(`a Struct cannot hold ${x}`);
      return { numberValue: x };
    case 'bigint':
      if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < -BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new RangeError(`${x} is beyond 2^53: a Struct (double) would round it; send argumentsJson`);
      }
      return { numberValue: Number(x) };
    case 'string':
      return { stringValue: x };
    case 'boolean':
      return { boolValue: x };
    case 'object':
      if (Array.isArray(x)) return { listValue: { values: x.map((y) => toValue(y, depth + 1)) } };
      return { structValue: toStruct(x, depth + 1) };
    default:
      throw new TypeError(`a Struct cannot hold a ${typeof x}`);
  }
}

/** A plain object → google.protobuf.Struct. */
function toStruct(obj, depth = 0) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new TypeError('a Struct is made from a plain object');
  }
  const fields = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v !== undefined) fields[k] = toValue(v, depth + 1);
  }
  return { fields };
}

// ---- exact JSON ----------------------------------------------------------

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Parses JSON text (a tool call's `argumentsJson`) keeping every integer exact:
 * integers beyond ±(2^53 − 1), which JSON.parse would round, become
 * - `BigInt` (bigints: 'bigint', the default),
 * - the literal's decimal string (bigints: 'string'), or
 * - a rounded Number (bigints: 'number', i.e. what JSON.parse does).
 * Every other number is a Number, as JSON.parse gives (decimals are doubles:
 * a decimal with more digits than a double holds is rounded in every mode; use
 * `rawNumbers: true` to get every number as its literal text instead).
 * Invalid JSON throws SyntaxError, as JSON.parse does.
 */
function parseArgumentsJson(text, options = {}) {
  const bigints = options.bigints || 'bigint';
  const rawNumbers = Boolean(options.rawNumbers);
  if (!['bigint', 'string', 'number'].includes(bigints)) {
    throw new TypeError(`bigints must be 'bigint', 'string' or 'number', not ${bigints}`);
  }
  if (typeof text !== 'string') throw new TypeError('argumentsJson must be a string');
  // JSON.parse validates (and is the answer when no number needs care).
  const plain = JSON.parse(text);
  if (!rawNumbers && (bigints === 'number' || !/\d{16}/.test(text))) return plain;
  return new ExactParser(text, bigints, rawNumbers).parse();
}

class ExactParser {
  constructor(text, bigints, rawNumbers) {
    this.s = text;
    this.i = 0;
    this.bigints = bigints;
    this.raw = rawNumbers;
  }

  parse() {
    const v = this.value(0);
    this.ws();
    if (this.i !== this.s.length) throw new SyntaxError(`Unexpected data at position ${this.i}`);
    return v;
  }

  ws() {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i += 1;
      else break;
    }
  }

  value(depth) {
    if (depth > 10000) throw new RangeError('JSON nested too deeply');
    this.ws();
    const c = this.s[this.i];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"') return this.string();
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    for (const [lit, val] of [['true', true], ['false', false], ['null', null]]) {
      if (this.s.startsWith(lit, this.i)) {
        this.i += lit.length;
        return val;
      }
    }
    throw new SyntaxError(`Unexpected token at position ${this.i}`);
  }

  object(depth) {
    const out = {};
    this.i += 1;
    this.ws();
    if (this.s[this.i] === '}') {
      this.i += 1;
      return out;
    }
    for (;;) {
      this.ws();
      const k = this.string();
      this.ws();
      if (this.s[this.i] !== ':') throw new SyntaxError(`Expected ':' at position ${this.i}`);
      this.i += 1;
      // Define, never assign: a key "__proto__" is data, as with JSON.parse.
      Object.defineProperty(out, k, { value: this.value(depth + 1), enumerable: true, writable: true, configurable: true });
      this.ws();
      const c = this.s[this.i++];
      if (c === '}') return out;
      if (c !== ',') throw new SyntaxError(`Expected ',' or '}' at position ${this.i - 1}`);
    }
  }

  array(depth) {
    const out = [];
    this.i += 1;
    this.ws();
    if (this.s[this.i] === ']') {
      this.i += 1;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.s[this.i++];
      if (c === ']') return out;
      if (c !== ',') throw new SyntaxError(`Expected ',' or ']' at position ${this.i - 1}`);
    }
  }

  string() {
    if (this.s[this.i] !== '"') throw new SyntaxError(`Expected a string at position ${this.i}`);
    const start = this.i;
    this.i += 1;
    while (this.i < this.s.length) {
      const c = this.s[this.i];
      if (c === '\\') this.i += 2;
      else if (c === '"') {
        this.i += 1;
        return JSON.parse(this.s.slice(start, this.i));
      } else this.i += 1;
    }
    throw new SyntaxError('Unterminated string');
  }

  number() {
    const m = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
    m.lastIndex = this.i;
    const r = m.exec(this.s);
    if (r === null) throw new SyntaxError(`Bad number at position ${this.i}`);
    this.i = m.lastIndex;
    const lit = r[0];
    if (this.raw) return lit;
    if (r[1] === undefined && r[2] === undefined) {
      const b = BigInt(lit);
      if (b > SAFE || b < -SAFE) return this.bigints === 'string' ? lit : b;
    }
    return Number(lit);
  }
}

/**
 * A tool call (from ChatMessage.toolCalls) with its arguments as a plain object:
 * from `argumentsJson` (exact) when present, else from the `arguments` Struct.
 */
function toolCallArguments(toolCall, options) {
  if (toolCall.argumentsJson) return parseArgumentsJson(toolCall.argumentsJson, options);
  return structToObject(toolCall.arguments) || {};
}

module.exports = { valueToJs, structToObject, toValue, toStruct, parseArgumentsJson, toolCallArguments };
