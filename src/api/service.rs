//! The `ChatModelService` implementation: Invoke folds the Stream chunks,
//! StreamEvents wraps them (its state machine is `events.rs`); all three share
//! `admit` (count the call in, validate, route) and `Pipeline::start`.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use super::{
    convert,
    drain::{guard, CallGuard, Drain, LOG_VALUE_MAX},
    events::Events,
    status::to_status,
};
use crate::{
    chat::types as d,
    error::{log_safe, Error},
    observe::CallObs,
    pb::{self, chat_model_service_server::ChatModelService},
    pipeline::Pipeline,
    provider::{ChunkStream, Route},
};

/// The service; cheap to clone.
#[derive(Clone)]
pub(crate) struct ChatService {
    pub(super) pipeline: Arc<Pipeline>,
    pub(super) drain: Arc<Drain>,
}

impl ChatService {
    pub(crate) fn new(pipeline: Arc<Pipeline>, drain: Arc<Drain>) -> Self {
        Self { pipeline, drain }
    }
}

/// A validated, routed request.
pub(super) struct Prepared {
    /// The model name as the caller wrote it (an alias or provider:model).
    pub(super) model_name: String,
    /// The request as received: kept only for StreamEvents' `start` event
    /// (boxed, as is `request`: a call waiting for its first token holds this
    /// struct in its future, and these two would be most of it).
    pub(super) input: Option<Box<pb::ChatRequest>>,
    /// Taken by `start` (moved into the pipeline, never copied).
    request: Option<Arc<d::ChatRequest>>,
    pub(super) routes: Vec<Route>,
    pub(super) run_id: String,
    pub(super) name: String,
    pub(super) tags: Vec<String>,
    pub(super) metadata: BTreeMap<String, String>,
    deadline: Option<Instant>,
    /// Metrics and traces of this call.
    pub(super) obs: CallObs,
}

impl Prepared {
    /// Labels the call's metrics and span with its route (once, before it starts).
    fn observed(&mut self, obs: CallObs) {
        let provider = self
            .routes
            .first()
            .map_or("none", |r| r.provider.info().name);
        obs.routed(provider, &self.model_name);
        if let Some(r) = &self.request {
            obs.input(r);
        }
        self.obs = obs;
    }

    fn fallback_id(&self) -> String {
        format!("run-{}", self.run_id)
    }

    pub(super) fn model(&self) -> String {
        self.routes
            .first()
            .map(|r| r.model.clone())
            .unwrap_or_default()
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What a unary or server-streaming method returns under `async_trait`.
type CallFuture<'a, T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send + 'a>>;

impl ChatService {
    /// Counts the call in, validates and routes its request and labels its
    /// metrics; a refused request is counted out with its status.
    fn admit(
        &self,
        rpc: &'static str,
        req: Request<pb::ChatRequest>,
        keep_input: bool,
    ) -> Result<(CallGuard, Prepared), Status> {
        let mut call = self.drain.enter(rpc);
        let obs = call.observe(&self.pipeline.observer, req.metadata());
        let mut p = self
            .prepare(req, keep_input)
            .inspect_err(|s| call.finish(s.code()))?;
        call.describe(&p.model_name, &p.run_id);
        p.observed(obs);
        Ok((call, p))
    }

    /// Invoke's and Stream's future: `run` for an admitted call, or the
    /// status of a refused one, ready.
    fn admitted<'a, T, F>(
        &self,
        rpc: &'static str,
        req: Request<pb::ChatRequest>,
        run: impl FnOnce(CallGuard, Prepared) -> F,
    ) -> CallFuture<'a, T>
    where
        T: Send + 'a,
        F: Future<Output = Result<Response<T>, Status>> + Send + 'a,
    {
        match self.admit(rpc, req, false) {
            Ok((call, p)) => Box::pin(run(call, p)),
            Err(s) => Box::pin(std::future::ready(Err(s))),
        }
    }

    /// Validates and routes a request; `keep_input` keeps the request as
    /// received (StreamEvents echoes it in `start`), at the cost of one copy.
    fn prepare(&self, req: Request<pb::ChatRequest>, keep_input: bool) -> Result<Prepared, Status> {
        if self.drain.is_draining() {
            return Err(Drain::status(false));
        }
        // End a little before the caller's deadline: our DEADLINE_EXCEEDED (with its
        // message) must reach the client before its own timer, and before tonic's
        // server-side grpc-timeout layer, which answers a unary call with CANCELLED.
        let deadline = grpc_timeout(req.metadata()).map(|t| {
            // 10% (5–100 ms): enough for the status to get out on a loaded machine.
            let margin = (t / 10).clamp(Duration::from_millis(5), Duration::from_millis(100));
            Instant::now() + t.saturating_sub(margin)
        });
        let input = req.into_inner();
        let kept = keep_input.then(|| Box::new(input.clone()));
        let config = input.config.clone().unwrap_or_default();
        let model_name = input.model.clone();
        let request = convert::request(input).map_err(|e| to_status(&e))?;
        let routes = self
            .pipeline
            .registry
            .resolve(&model_name)
            .map_err(|e| to_status(&e))?;
        let run_id = if config.run_id.is_empty() {
            uuid::Uuid::now_v7().to_string()
        } else {
            config.run_id.clone()
        };
        let name = if config.run_name.is_empty() {
            routes
                .first()
                .map(|r| r.provider.chat_class(&r.model).to_string())
                .unwrap_or_default()
        } else {
            config.run_name.clone()
        };
        Ok(Prepared {
            model_name,
            input: kept,
            request: Some(Arc::new(request)),
            routes,
            run_id,
            name,
            tags: config.tags,
            metadata: config.metadata.into_iter().collect(),
            deadline,
            obs: CallObs::none(),
        })
    }

    pub(super) async fn start(&self, p: &mut Prepared) -> Result<(Route, ChunkStream), Error> {
        let request = p
            .request
            .take()
            .ok_or_else(|| Error::internal("a call was started twice"))?;
        let started = self
            .pipeline
            .start_observed(
                &p.model_name,
                p.routes.clone(),
                request,
                p.fallback_id(),
                p.deadline,
                &p.obs,
            )
            .await
            .inspect_err(|e| p.obs.error(e))?;
        tracing::info!(
            model = %log_safe(&started.route.qualified, LOG_VALUE_MAX),
            run_id = %log_safe(&p.run_id, LOG_VALUE_MAX),
            "call started"
        );
        Ok((started.route, started.chunks))
    }
}

#[tonic::async_trait]
impl ChatModelService for ChatService {
    // Invoke and Stream are written out as `async_trait` would expand them, so
    // that the request as received is validated and dropped before the
    // future is built: an `async fn` keeps its argument (here 592 bytes, in
    // two places) in its future for as long as the call waits.
    fn invoke<'life0, 'async_trait>(
        &'life0 self,
        req: Request<pb::ChatRequest>,
    ) -> CallFuture<'async_trait, pb::ChatMessage>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.admitted("Invoke", req, move |mut call, mut p| async move {
            let run = async {
                let (route, mut chunks) = self.start(&mut p).await.map_err(|e| to_status(&e))?;
                let mut fold = self.pipeline.fold(route.model.clone());
                while let Some(c) = chunks.next().await {
                    let c = c.map_err(|e| to_status(&e))?;
                    fold.push(&c).map_err(|e| to_status(&e))?;
                    p.obs.chunk_out();
                }
                Ok(Response::new(convert::message_out(fold.finish())))
            };
            let result = tokio::select! {
                r = run => r,
                () = self.drain.stopped() => Err(Drain::status(true)),
            };
            call.finish(
                result
                    .as_ref()
                    .map_or_else(Status::code, |_| tonic::Code::Ok),
            );
            result
        })
    }

    type StreamStream = BoxStream<pb::MessageChunk>;

    fn stream<'life0, 'async_trait>(
        &'life0 self,
        req: Request<pb::ChatRequest>,
    ) -> CallFuture<'async_trait, Self::StreamStream>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.admitted("Stream", req, move |mut call, mut p| async move {
            let started = tokio::select! {
                r = self.start(&mut p) => r.map_err(|e| to_status(&e)),
                () = self.drain.stopped() => Err(Drain::status(true)),
            };
            let (_, chunks) = started.inspect_err(|s| call.finish(s.code()))?;
            let obs = p.obs.clone();
            let out = chunks.map(move |c| {
                obs.chunk_out();
                c.map(convert::chunk).map_err(|e| to_status(&e))
            });
            Ok(Response::new(guard(out, call)))
        })
    }

    type StreamEventsStream = BoxStream<pb::ChatEvent>;

    async fn stream_events(
        &self,
        req: Request<pb::ChatRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let (call, p) = self.admit("StreamEvents", req, true)?;
        Ok(Response::new(guard(Events::stream(self.clone(), p), call)))
    }

    async fn list_models(
        &self,
        _req: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let reg = &self.pipeline.registry;
        let mut models = Vec::new();
        let mut providers = Vec::new();
        for info in reg.infos() {
            providers.push(pb::ProviderInfo {
                name: info.name.to_string(),
                configured: info.configured,
                base_url: crate::provider::display_url(&info.base_url),
                features: info.features.iter().map(|f| f.to_string()).collect(),
            });
            for m in &info.models {
                let name = format!("{}:{m}", info.name);
                models.push(pb::ModelInfo {
                    streaming: reg.options_for(&name).streaming,
                    target: name.clone(),
                    name,
                    provider: info.name.to_string(),
                });
            }
        }
        for (name, alias) in reg.aliases() {
            let target = alias.targets.first().cloned().unwrap_or_default();
            models.push(pb::ModelInfo {
                name: name.clone(),
                provider: target.split(':').next().unwrap_or_default().to_string(),
                target,
                streaming: reg.streams(name),
            });
        }
        Ok(Response::new(pb::ListModelsResponse { models, providers }))
    }
}

/// The caller's `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
pub(crate) fn grpc_timeout(md: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    let t = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    // 8 digits of hours is 11,000 years: bound it so no clock arithmetic can overflow.
    Some(t.min(Duration::from_secs(crate::config::MAX_SECS)))
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
