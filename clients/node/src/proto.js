'use strict';
// Where the .proto files are, and how they are loaded.
//
// chatwire.proto is the repository's own `proto/chatwire/v1/chatwire.proto`
// (the `protoPath` option, else CHATWIRE_PROTO, else found from this package's
// place in the repository, else the copy `npm pack` puts in `proto/`); the google.rpc
// protos that describe error details ship in this package's `proto/` folder.
const fs = require('node:fs');
const path = require('node:path');

const PKG_ROOT = path.resolve(__dirname, '..');
const RPC_PROTO_DIR = path.join(PKG_ROOT, 'proto');
const CHATWIRE_REL = path.join('chatwire', 'v1', 'chatwire.proto');

/**
 * proto-loader options that give the nicest plain objects:
 * - keepCase: false → camelCase names, the proto3 JSON names docs/CONTRACT.md pins
 *   (`maxTokens`, `stopReason`, `argumentsJson`), as grpcurl prints them;
 * - enums: String → `'STOP_REASON_END_TURN'`, `'ROLE_USER'` instead of numbers
 *   (requests accept either);
 * - longs: String → the few int64 fields (`seed`, `Citation.start/end`) arrive as
 *   decimal strings, exact beyond 2^53 (Number would round, Long is an object);
 * - defaults: true → scalar fields are always present (`last: false`, `text: ''`
 *   on a message that sets no text), so `chunk.last` is never undefined;
 *   members of a oneof are NOT filled in — only the one that is set is there;
 * - oneofs: true → a virtual field names the oneof member that is set:
 *   `chunk.delta === 'text'`, `event.event === 'stream'`, `block.block === 'toolCall'`.
 */
const LOADER_OPTIONS = Object.freeze({
  keepCase: false,
  enums: String,
  longs: String,
  defaults: true,
  oneofs: true,
});

/** The path of chatwire.proto, or throws saying where it looked. */
function chatwireProtoPath(explicit) {
  const candidates = [];
  if (explicit) candidates.push(path.resolve(explicit));
  if (process.env.CHATWIRE_PROTO) candidates.push(path.resolve(process.env.CHATWIRE_PROTO));
  candidates.push(path.resolve(PKG_ROOT, '..', '..', 'proto', CHATWIRE_REL));
  candidates.push(path.join(RPC_PROTO_DIR, CHATWIRE_REL));
  for (const c of candidates) {
    if (fs.existsSync(c)) return c;
  }
  throw new Error(`chatwire.proto not found (looked in: ${candidates.join(', ')}); pass protoPath or set CHATWIRE_PROTO`);
}

/** The include dir for a chatwire.proto path (the folder holding `chatwire/v1/`). */
function includeDirFor(protoPath) {
  return path.resolve(path.dirname(protoPath), '..', '..');
}

module.exports = { LOADER_OPTIONS, RPC_PROTO_DIR, chatwireProtoPath, includeDirFor };
