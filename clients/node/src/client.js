'use strict';
// A small client over @grpc/grpc-js + @grpc/proto-loader for chatwire.v1.ChatModelService.
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { LOADER_OPTIONS, chatwireProtoPath, includeDirFor } = require('./proto');
const { ChatwireError } = require('./errors');

/**
 * Loads chatwire.proto and returns the grpc-js service constructor
 * (`chatwire.v1.ChatModelService`), for callers who want the raw stubs.
 */
function loadService(options = {}) {
  const protoPath = chatwireProtoPath(options.protoPath);
  const def = protoLoader.loadSync(protoPath, { ...LOADER_OPTIONS, includeDirs: [includeDirFor(protoPath)] });
  return grpc.loadPackageDefinition(def).chatwire.v1.ChatModelService;
}

function deadlineFrom(ms) {
  if (ms === undefined || ms === null || ms === Infinity) return undefined;
  return new Date(Date.now() + ms);
}

/**
 * A chatwire client.
 *
 *   const client = new ChatwireClient('127.0.0.1:50051', { token: 'tok1' });
 *   for await (const chunk of client.stream({ model: 'fake:echo', messages: [userText('hi')] })) { ... }
 *
 * Options: `credentials` (grpc.credentials.createSsl(...) for TLS; insecure by
 * default), `token` (sent as `authorization: Bearer <token>` on every call),
 * `deadlineMs` (default per-call deadline; none by default), `protoPath`,
 * `channelOptions` (grpc-js channel options).
 */
class ChatwireClient {
  constructor(address, options = {}) {
    const Service = loadService(options);
    this.raw = new Service(address, options.credentials || grpc.credentials.createInsecure(), options.channelOptions || {});
    this.token = options.token || null;
    this.deadlineMs = options.deadlineMs;
  }

  metadata(opts) {
    const md = new grpc.Metadata();
    const token = opts.token !== undefined ? opts.token : this.token;
    if (token) md.set('authorization', `Bearer ${token}`);
    return md;
  }

  callOptions(opts) {
    const ms = opts.deadlineMs !== undefined ? opts.deadlineMs : this.deadlineMs;
    const deadline = deadlineFrom(ms);
    return deadline ? { deadline } : {};
  }

  unary(method, request, opts) {
    return new Promise((resolve, reject) => {
      const call = this.raw[method](request, this.metadata(opts), this.callOptions(opts), (err, res) => {
        if (opts.signal) opts.signal.removeEventListener('abort', onAbort);
        if (err) reject(new ChatwireError(err));
        else resolve(res);
      });
      const onAbort = () => call.cancel();
      if (opts.signal) {
        if (opts.signal.aborted) call.cancel();
        else opts.signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  /** Invoke: the final ChatMessage. Options: deadlineMs, token, signal (AbortSignal). */
  invoke(request, opts = {}) {
    return this.unary('invoke', request, opts);
  }

  /** ListModels: {models, providers}. */
  listModels(opts = {}) {
    return this.unary('listModels', {}, opts);
  }

  /**
   * Stream: an async iterable of MessageChunk (a ChatStream). Leaving the
   * `for await` loop early (break, return, throw) cancels the call, and so do
   * `stream.cancel()` and `opts.signal`; the server then drops the upstream
   * request. A failed call throws a ChatwireError from the loop.
   */
  stream(request, opts = {}) {
    return new ChatStream(this.raw.stream(request, this.metadata(opts), this.callOptions(opts)), opts.signal);
  }

  /** StreamEvents: an async iterable of ChatEvent (start, stream..., end | error). */
  streamEvents(request, opts = {}) {
    return new ChatStream(this.raw.streamEvents(request, this.metadata(opts), this.callOptions(opts)), opts.signal);
  }

  /** Closes the channel. */
  close() {
    this.raw.close();
  }
}

/** A server-streaming call as an async iterable; `call` is the grpc-js call. */
class ChatStream {
  constructor(call, signal) {
    this.call = call;
    this.cancelled = false;
    this.signal = signal || null;
    this.onAbort = () => this.cancel();
    if (signal) {
      if (signal.aborted) this.cancel();
      else signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /** Cancels the call: the stream ends with a CANCELLED ChatwireError. */
  cancel() {
    this.cancelled = true;
    this.call.cancel();
  }

  async *[Symbol.asyncIterator]() {
    let done = false;
    try {
      for await (const msg of this.call) yield msg;
      done = true;
    } catch (err) {
      done = true;
      throw err instanceof ChatwireError ? err : new ChatwireError(err);
    } finally {
      // The consumer left early: cancel, so the server stops the upstream.
      if (!done) this.call.cancel();
      if (this.signal) this.signal.removeEventListener('abort', this.onAbort);
    }
  }
}

/** A user message with one text block. */
function userText(text) {
  return { role: 'ROLE_USER', content: [{ text }] };
}

/** A system message with one text block. */
function systemText(text) {
  return { role: 'ROLE_SYSTEM', content: [{ text }] };
}

module.exports = { ChatwireClient, ChatStream, loadService, userText, systemText };
