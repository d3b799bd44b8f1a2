// TypeScript: stubs from `buf generate` (protoc-gen-es) called over gRPC with
// Connect-ES (@connectrpc/connect + @connectrpc/connect-node).
// Usage: node stream.js HOST:PORT [TOKEN]   (scripts/ci-node.sh compiles and runs it)
import { Code, createClient, ConnectError } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ChatModelService, Role, StopReason } from "./gen/ts/chatwire/v1/chatwire_pb";
import { ErrorInfoSchema, RetryInfoSchema } from "./gen/ts/google/rpc/error_details_pb";

const [addr, token] = process.argv.slice(2);
const client = createClient(ChatModelService, createGrpcTransport({ baseUrl: `http://${addr}` }));
const headers = token ? { authorization: `Bearer ${token}` } : undefined;

async function main(): Promise<void> {
  // Stream: chunks as they come; abort (or leave the loop) to cancel the call.
  const abort = new AbortController();
  const request = { model: "fake:echo", messages: [{ role: Role.USER, content: [{ block: { case: "text" as const, value: "Hello from TypeScript" } }] }] };
  for await (const chunk of client.stream(request, { headers, timeoutMs: 30_000, signal: abort.signal })) {
    if (chunk.delta.case === "text") process.stdout.write(`${chunk.delta.value}|`);
    if (chunk.last) process.stdout.write(`\nlast stop=${StopReason[chunk.stopReason]}\n`);
  }

  // Errors: ConnectError decodes grpc-status-details-bin; findDetails unpacks the Any.
  const script = JSON.stringify({ chunks: [{ text: "x" }], fail: { afterChunks: 1, httpStatus: 429, retryAfterSecs: 7 } });
  try {
    for await (const _ of client.stream({ ...request, model: "fake:script", messages: [{ role: Role.USER, content: [{ block: { case: "text", value: script } }] }] }, { headers })) {
      // chunks before the failure
    }
  } catch (e) {
    const err = ConnectError.from(e);
    const [info] = err.findDetails(ErrorInfoSchema);
    const [retry] = err.findDetails(RetryInfoSchema);
    const delayMs = retry?.retryDelay ? Number(retry.retryDelay.seconds) * 1000 + retry.retryDelay.nanos / 1e6 : null;
    console.log(`error code=${Code[err.code]} reason=${info?.reason} domain=${info?.domain} upstream_status=${info?.metadata.upstream_status} retryDelayMs=${delayMs}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
