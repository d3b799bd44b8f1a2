//! What a call holds while it waits for its first token: its future (Invoke,
//! Stream) or its response stream (StreamEvents), one per open call. With
//! reasoning models a call can wait many seconds, so at 10,000 open calls
//! every 100 bytes here is a megabyte. Before this guard the Stream call's
//! future was 4,312 bytes (the request as received, 592 bytes, twice; the
//! converted request, 312, three times; the route twice) and StreamEvents'
//! next-event future, which its stream holds throughout, 4,792 (its state
//! twice, and the start's future kept for the whole stream; rustc's
//! `-Zprint-type-sizes`); now Stream's future is 1,240 bytes and StreamEvents'
//! whole stream 824.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use futures_util::StreamExt;
use tonic::Request;

use super::{ChatService, Events};
use crate::{
    api::drain::Drain,
    config::{Config, Env},
    pb::{self, chat_model_service_server::ChatModelService},
    pipeline::Pipeline,
};

fn service() -> ChatService {
    let registry = crate::provider::registry::build(&Config::default(), &Env::new()).unwrap();
    let pipeline = Pipeline::new(
        registry,
        Default::default(),
        Default::default(),
        Default::default(),
    );
    ChatService::new(Arc::new(pipeline), Drain::new())
}

fn request() -> Request<pb::ChatRequest> {
    Request::new(pb::ChatRequest {
        model: "fake:echo".into(),
        messages: vec![pb::Message {
            role: pb::Role::User as i32,
            content: vec![pb::ContentBlock {
                block: Some(pb::content_block::Block::Text("hi there".into())),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// The bytes a call's future (Invoke 1,264 now, Stream 1,240) or StreamEvents'
/// stream (824) holds in its own allocation.
const MAX_CALL_FUTURE: usize = 1536;
const MAX_EVENTS_STREAM: usize = 1024;

#[tokio::test]
async fn a_waiting_call_holds_little() {
    let svc = service();

    let invoke = svc.invoke(request());
    let size = std::mem::size_of_val(&*invoke);
    assert!(size <= MAX_CALL_FUTURE, "Invoke's future is {size} bytes");
    // It is the call itself (a refused request would be a ready error): it answers.
    let answer = invoke.await.unwrap().into_inner();
    assert_eq!(answer.content.len(), 1, "{answer:?}");

    let stream = svc.stream(request());
    let size = std::mem::size_of_val(&*stream);
    assert!(size <= MAX_CALL_FUTURE, "Stream's future is {size} bytes");
    let chunks: Vec<_> = stream.await.unwrap().into_inner().collect().await;
    assert!(chunks.last().unwrap().as_ref().unwrap().last, "{chunks:?}");

    // StreamEvents' stream holds its state machine's next-event future
    // (behind the call guard's box) for as long as it lasts.
    let (_call, p) = svc.admit("StreamEvents", request(), true).unwrap();
    let events = Events::stream(svc.clone(), p);
    let size = std::mem::size_of_val(&*events);
    assert!(
        size <= MAX_EVENTS_STREAM,
        "StreamEvents' stream is {size} bytes"
    );
    let events: Vec<_> = events.collect().await;
    assert!(events.len() >= 3, "{events:?}");
    let rpc = svc.stream_events(request()).await.unwrap().into_inner();
    assert_eq!(rpc.collect::<Vec<_>>().await.len(), events.len());
}
