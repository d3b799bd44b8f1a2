// Java: stubs from `buf generate` (protoc's java + grpc-java's plugin), blocking stub.
// scripts/ci-node.sh compiles this file against the generated code (it does not run it:
// no grpc-java transport, e.g. grpc-netty-shaded, can be installed on the CI machine).
import com.chatwire.v1.ChatModelServiceGrpc;
import com.chatwire.v1.ChatRequest;
import com.chatwire.v1.ContentBlock;
import com.chatwire.v1.Message;
import com.chatwire.v1.MessageChunk;
import com.chatwire.v1.Role;
import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;

public final class ChatwireStream {
  public static void main(String[] args) throws InvalidProtocolBufferException {
    ManagedChannel channel = ManagedChannelBuilder.forTarget(args[0]).usePlaintext().build();
    Metadata auth = new Metadata();
    auth.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + args[1]);
    ChatModelServiceGrpc.ChatModelServiceBlockingStub stub = ChatModelServiceGrpc.newBlockingStub(channel)
        .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(auth))
        .withDeadlineAfter(30, TimeUnit.SECONDS);
    ChatRequest request = ChatRequest.newBuilder().setModel("fake:echo")
        .addMessages(Message.newBuilder().setRole(Role.ROLE_USER)
            .addContent(ContentBlock.newBuilder().setText("Hello from Java")))
        .build();

    // Cancelling the context cancels the call (the server drops the upstream request).
    Context.CancellableContext ctx = Context.current().withCancellation();
    try {
      ctx.run(() -> {
        Iterator<MessageChunk> chunks = stub.stream(request);
        while (chunks.hasNext()) {
          MessageChunk chunk = chunks.next();
          if (chunk.hasText()) System.out.print(chunk.getText());
          if (chunk.getLast()) System.out.println("\n" + chunk.getStopReason());
        }
      });
    } catch (StatusRuntimeException e) {
      // grpc-status-details-bin as a google.rpc.Status; its details are Any.
      com.google.rpc.Status status = StatusProto.fromThrowable(e);
      for (Any detail : status == null ? java.util.List.<Any>of() : status.getDetailsList()) {
        if (detail.is(ErrorInfo.class)) {
          ErrorInfo info = detail.unpack(ErrorInfo.class);
          System.err.println(e.getStatus().getCode() + " " + info.getReason() + " " + info.getMetadataMap());
        } else if (detail.is(RetryInfo.class)) {
          System.err.println("retry after " + detail.unpack(RetryInfo.class).getRetryDelay().getSeconds() + " s");
        }
      }
    } finally {
      ctx.cancel(null);
      channel.shutdownNow();
    }
  }
}
