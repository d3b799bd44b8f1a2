'use strict';
// Error details: `grpc-status-details-bin` → {code, message, errorInfo, retryInfo}.
//
// chatwire ends every failed call with a status whose `grpc-status-details-bin`
// trailer is a serialized google.rpc.Status; its `details` are Any messages:
// a google.rpc.ErrorInfo (domain "chatwire", an UPPER_SNAKE reason, metadata
// `provider` and `upstream_status`) always, and a google.rpc.RetryInfo when the
// upstream said when to retry.
const path = require('node:path');
const protobuf = require('protobufjs');
const grpc = require('@grpc/grpc-js');
const { RPC_PROTO_DIR } = require('./proto');

const DETAILS_KEY = 'grpc-status-details-bin';
const TYPE_PREFIX = 'type.googleapis.com/';

let rpcRoot = null;
function root() {
  if (rpcRoot === null) {
    const r = new protobuf.Root();
    // google/rpc/* from this package; google/protobuf/* are protobufjs's bundled copies.
    r.resolvePath = (_origin, target) =>
      target.startsWith('google/rpc/') ? path.join(RPC_PROTO_DIR, target) : target;
    r.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: false });
    r.resolveAll();
    rpcRoot = r;
  }
  return rpcRoot;
}

const CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k]),
);

/** The name of a numeric gRPC status code (`14` → `'UNAVAILABLE'`). */
function codeName(code) {
  return CODE_NAMES[code] || `CODE_${code}`;
}

function durationMs(d) {
  if (!d) return null;
  const seconds = Number(d.seconds || 0);
  const nanos = Number(d.nanos || 0);
  return seconds * 1000 + Math.round(nanos / 1e6);
}

/**
 * Decodes a google.rpc.Status (the bytes of `grpc-status-details-bin`).
 * Returns {code, codeName, message, errorInfo, retryInfo, details}:
 * errorInfo = {reason, domain, metadata} or null, retryInfo = {retryDelayMs} or
 * null, details = every detail as {type, value} (value decoded when the type is
 * one of google/rpc/error_details.proto's, else the raw bytes).
 * Throws on bytes that are not a Status.
 */
function decodeStatusBytes(bytes) {
  const r = root();
  const Status = r.lookupType('google.rpc.Status');
  const status = Status.decode(bytes);
  const out = {
    code: status.code,
    codeName: codeName(status.code),
    message: status.message,
    errorInfo: null,
    retryInfo: null,
    details: [],
  };
  for (const any of status.details) {
    const typeUrl = any.type_url || any.typeUrl || '';
    const typeName = typeUrl.startsWith(TYPE_PREFIX) ? typeUrl.slice(TYPE_PREFIX.length) : typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    let type = null;
    try {
      type = r.lookupType(typeName);
    } catch {
      type = null;
    }
    if (type === null) {
      out.details.push({ type: typeName, value: Buffer.from(any.value) });
      continue;
    }
    const value = type.toObject(type.decode(any.value), { longs: String, enums: String, defaults: true });
    out.details.push({ type: typeName, value });
    if (typeName === 'google.rpc.ErrorInfo' && out.errorInfo === null) {
      out.errorInfo = { reason: value.reason, domain: value.domain, metadata: { ...value.metadata } };
    } else if (typeName === 'google.rpc.RetryInfo' && out.retryInfo === null) {
      out.retryInfo = { retryDelayMs: durationMs(value.retryDelay) };
    }
  }
  return out;
}

/**
 * The error details of a grpc-js error (a ServiceError, or anything with
 * `code`, `details` and `metadata`): {code, codeName, message, errorInfo,
 * retryInfo, details}. Without a details trailer (a status the server's
 * transport made, e.g. CANCELLED or DEADLINE_EXCEEDED on the client side),
 * errorInfo and retryInfo are null and code / message come from the error.
 */
function decodeStatusDetails(err) {
  const fallback = {
    code: err && typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN,
    message: err ? (err.details ?? err.message ?? '') : '',
  };
  const values = err && err.metadata && typeof err.metadata.get === 'function' ? err.metadata.get(DETAILS_KEY) : [];
  if (values.length > 0 && Buffer.isBuffer(values[0])) {
    try {
      return decodeStatusBytes(values[0]);
    } catch {
      // A trailer that does not decode is reported as no details.
    }
  }
  return { ...fallback, codeName: codeName(fallback.code), errorInfo: null, retryInfo: null, details: [] };
}

/** Codes a client may retry (with backoff; RetryInfo's delay when given). */
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.RESOURCE_EXHAUSTED]);

/** The one error type this client throws: a gRPC status with its decoded details. */
class ChatwireError extends Error {
  constructor(err) {
    const d = decodeStatusDetails(err);
    super(`${d.codeName}: ${d.message}`);
    this.name = 'ChatwireError';
    this.code = d.code;
    this.codeName = d.codeName;
    this.details = d.message;
    this.errorInfo = d.errorInfo;
    this.retryInfo = d.retryInfo;
    this.statusDetails = d.details;
    this.metadata = err && err.metadata;
    this.cause = err;
  }

  /** The ErrorInfo reason (`'UPSTREAM_RATE_LIMITED'`...), or null. */
  get reason() {
    return this.errorInfo ? this.errorInfo.reason : null;
  }

  /** True for UNAVAILABLE and RESOURCE_EXHAUSTED: try again later. */
  get retryable() {
    return RETRYABLE.has(this.code);
  }
}

module.exports = { ChatwireError, decodeStatusDetails, decodeStatusBytes, codeName, DETAILS_KEY };
