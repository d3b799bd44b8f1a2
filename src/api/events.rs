//! StreamEvents' state machine: one `start`, then one `stream` event per chunk,
//! then exactly one terminal event — `end` with the folded answer, or `error`
//! with the status about to end the stream and the partial answer.

use std::{collections::HashMap, future::Future, pin::Pin};

use futures_util::{stream, StreamExt};
use tonic::Status;

use super::{
    convert,
    drain::{Drain, Guarded},
    service::{ChatService, Prepared},
    status::to_status,
};
use crate::{
    error::Error,
    pb,
    pipeline::Fold,
    provider::{ChunkStream, Route},
};

/// The drain's hard stop, awaited across the whole streaming phase (one
/// future per call: a new one per chunk would join and leave the drain's
/// shared waiter list each time the next chunk is not ready).
type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

enum Phase {
    Start,
    Starting,
    Streaming(ChunkStream, Stop),
    Failed(Status),
    Done,
}

/// The StreamEvents state machine: start, stream…, end | error.
pub(super) struct Events {
    phase: Phase,
    agg: Fold,
    service: ChatService,
    p: Prepared,
    metadata: HashMap<String, String>,
}

impl Events {
    /// The event stream for a prepared call.
    pub(super) fn stream(service: ChatService, p: Prepared) -> Guarded<pb::ChatEvent> {
        let state = Events {
            phase: Phase::Start,
            agg: service.pipeline.fold(p.model()),
            metadata: Self::metadata_for(&p, None),
            service,
            p,
        };
        Box::pin(stream::unfold(state, Events::next))
    }

    /// The caller's metadata plus LangChain's `ls_provider` / `ls_model_name`
    /// for the route that serves (or, before one does, the first candidate):
    /// built once per route, then copied into each event.
    fn metadata_for(p: &Prepared, route: Option<&Route>) -> HashMap<String, String> {
        let mut metadata: HashMap<String, String> = p
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(r) = route.or(p.routes.first()) {
            metadata.insert("ls_provider".into(), r.provider.info().name.into());
            metadata.insert("ls_model_name".into(), r.model.clone());
        }
        metadata
    }

    fn event(&self, ev: pb::chat_event::Event) -> pb::ChatEvent {
        pb::ChatEvent {
            run_id: self.p.run_id.clone(),
            name: self.p.name.clone(),
            tags: self.p.tags.clone(),
            metadata: self.metadata.clone(),
            event: Some(ev),
        }
    }

    fn fail(&mut self, e: &Error) -> pb::ChatEvent {
        let status = to_status(e);
        let ev = pb::chat_event::Event::Error(pb::ErrorEvent {
            code: status.code() as i32,
            message: status.message().to_string(),
            partial: Some(convert::message_out(self.agg.finish())),
        });
        self.event(ev)
    }

    /// The `error` event now; the same status ends the stream next.
    fn failed(mut self, e: Error) -> (Result<pb::ChatEvent, Status>, Self) {
        let ev = self.fail(&e);
        self.phase = Phase::Failed(to_status(&e));
        (Ok(ev), self)
    }

    /// The next event. Not an `async fn`, which would keep a second copy of
    /// `self` in its future; the future lives as long as the stream does
    /// (`unfold` holds it between events), so the start, which is awaited
    /// once, is boxed rather than sized into it.
    fn next(
        mut self,
    ) -> impl Future<Output = Option<(Result<pb::ChatEvent, Status>, Self)>> + Send {
        use pb::chat_event::Event as E;
        async move {
            loop {
                match std::mem::replace(&mut self.phase, Phase::Done) {
                    Phase::Start => {
                        self.phase = Phase::Starting;
                        let input = self.p.input.take().map(|i| *i);
                        let ev = self.event(E::Start(pb::StartEvent { input }));
                        return Some((Ok(ev), self));
                    }
                    Phase::Starting => match tokio::select! {
                        r = Box::pin(self.service.start(&mut self.p)) => r,
                        () = self.service.drain.stopped() => Err(Drain::error()),
                    } {
                        Ok((route, chunks)) => {
                            self.agg.set_model(route.model.clone());
                            self.metadata = Self::metadata_for(&self.p, Some(&route));
                            self.phase =
                                Phase::Streaming(chunks, Box::pin(self.service.drain.stopped()));
                        }
                        Err(e) => return Some(self.failed(e)),
                    },
                    Phase::Streaming(mut chunks, mut stop) => match tokio::select! {
                        biased;
                        c = chunks.next() => c,
                        () = &mut stop => Some(Err(Drain::error())),
                    } {
                        Some(Ok(c)) => {
                            if let Err(e) = self.agg.push(&c) {
                                // Over the cap: the chunk is not sent, the call ends.
                                return Some(self.failed(e));
                            }
                            self.phase = Phase::Streaming(chunks, stop);
                            self.p.obs.chunk_out();
                            let ev = self.event(E::Stream(pb::StreamEvent {
                                chunk: Some(convert::chunk(c)),
                            }));
                            return Some((Ok(ev), self));
                        }
                        Some(Err(e)) => return Some(self.failed(e)),
                        None => {
                            self.phase = Phase::Done;
                            // The answer moves into the event: never copied.
                            let output = convert::message_out(self.agg.finish());
                            let ev = self.event(E::End(pb::EndEvent {
                                output: Some(output),
                            }));
                            return Some((Ok(ev), self));
                        }
                    },
                    Phase::Failed(status) => {
                        self.phase = Phase::Done;
                        return Some((Err(status), self));
                    }
                    Phase::Done => return None,
                }
            }
        }
    }
}
