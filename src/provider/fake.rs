//! The built-in `fake` provider: deterministic, no network, always registered.
//!
//! - `fake:echo` streams the last user message back token by token, whitespace
//!   kept (LangChain's GenericFakeChatModel splits on `(\s)`: every word and
//!   every whitespace character is a token), with an optional per-token delay;
//!   `maxTokens` and `stop` cut it as they would a model's answer.
//! - `fake:script` takes the whole response from the last user message, a JSON
//!   script (see [`Script`]): every chunk kind, usage, stop reason, a delay, and a
//!   failure before or after N chunks with a given status. Tests drive every
//!   path of the real gRPC surface with it.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use futures_util::stream;

use super::{BoxFuture, Call, ChunkStream, Provider, ProviderInfo, Relay};
use crate::{
    chat::types::{Delta, Part, Reasoning, Role, StopReason, Usage},
    config::script::{Script, ScriptChunk, ScriptFailure, ScriptStop},
    error::Error,
};

/// The fake provider.
pub struct Fake {
    info: ProviderInfo,
    token_delay: Duration,
    /// Scripts from the config file, each served as `fake:<name>`.
    scripts: BTreeMap<String, serde_json::Value>,
}

impl Fake {
    /// With named scripts from the config (`[fake.scripts.NAME]`), each checked here.
    pub fn with_scripts(
        token_delay: Duration,
        scripts: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        let mut models = vec!["echo".to_string(), "script".to_string()];
        models.extend(scripts.keys().cloned());
        Self {
            info: ProviderInfo {
                name: "fake",
                chat_class: "FakeChatModel",
                configured: true,
                base_url: String::new(),
                features: vec!["tools", "reasoning", "usage"],
                models,
                how_to_configure: "nothing",
            },
            token_delay,
            scripts,
        }
    }
}

enum Step {
    Part(Part),
    Sleep(Duration),
    Fail(Error),
}

impl Provider for Fake {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn stream(&self, call: Call) -> BoxFuture<Result<ChunkStream, Error>> {
        let plan = match call.model.as_str() {
            "script" => parse_script(&last_user_text(&call)).and_then(|s| script_plan(s, "script")),
            "echo" => Ok(echo_plan(&call, self.token_delay)),
            name => match self.scripts.get(name) {
                Some(v) => Script::parse(v)
                    .map_err(|e| Error::internal(format!("fake script {name:?}: {e}")))
                    .and_then(|s| script_plan(s, name)),
                None => Ok(echo_plan(&call, self.token_delay)),
            },
        };
        Box::pin(async move {
            let mut steps = plan?;
            // A failure before the first chunk is the RPC status, as for real upstreams.
            if let Some(Step::Fail(_)) = steps.front() {
                if let Some(Step::Fail(e)) = steps.pop_front() {
                    return Err(e);
                }
            }
            let relay = Relay::new(call.fallback_id).with_model(call.model);
            let state = (steps, relay, VecDeque::new());
            let s = stream::unfold(state, |(mut steps, mut relay, mut out)| async move {
                loop {
                    if let Some(c) = out.pop_front() {
                        return Some((Ok(c), (steps, relay, out)));
                    }
                    match steps.pop_front()? {
                        Step::Part(p) => relay.push([p], &mut out),
                        Step::Sleep(d) => tokio::time::sleep(d).await,
                        Step::Fail(e) => {
                            steps.clear();
                            return Some((Err(e), (steps, relay, out)));
                        }
                    }
                }
            });
            Ok(Box::pin(s) as ChunkStream)
        })
    }
}

/// GenericFakeChatModel's tokenization: words and single whitespace characters.
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if start < i {
                out.push(&text[start..i]);
            }
            out.push(&text[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn last_user_text(call: &Call) -> String {
    call.request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.text())
        .unwrap_or_default()
}

fn echo_plan(call: &Call, delay: Duration) -> VecDeque<Step> {
    let full = last_user_text(call);
    // `stop`: the echo ends before the earliest stop sequence, as a model does.
    let stopped = call
        .request
        .stop
        .iter()
        .filter_map(|s| full.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at);
    let text = stopped.map_or(full.as_str(), |(at, _)| &full[..at]);
    let mut toks = tokens(text);
    if let Some(max) = call.request.max_tokens {
        toks.truncate(max as usize);
    }
    let cut = toks.len() < tokens(text).len();
    let mut steps = VecDeque::new();
    for t in &toks {
        if !delay.is_zero() {
            steps.push_back(Step::Sleep(delay));
        }
        steps.push_back(Step::Part(Part::Delta(Delta::Text((*t).to_string()))));
    }
    let input: usize = call
        .request
        .messages
        .iter()
        .map(|m| tokens(&m.text()).len())
        .sum();
    let input = u32::try_from(input).unwrap_or(u32::MAX);
    let output = u32::try_from(toks.len()).unwrap_or(u32::MAX);
    steps.push_back(Step::Part(Part::Usage(Usage {
        input,
        output,
        total: input.saturating_add(output),
        ..Usage::default()
    })));
    let (stop, reason, sequence) = match (cut, stopped) {
        (true, _) => (StopReason::MaxTokens, "max_tokens", String::new()),
        (false, Some((_, seq))) => (StopReason::StopSequence, "stop_sequence", seq.clone()),
        (false, None) => (StopReason::EndTurn, "end_turn", String::new()),
    };
    steps.push_back(Step::Part(Part::Stop(stop)));
    steps.push_back(Step::Part(Part::Finish {
        reason: reason.to_string(),
        stop_sequence: sequence,
    }));
    steps.push_back(Step::Part(Part::Done));
    steps
}

fn parse_script(text: &str) -> Result<Script, Error> {
    serde_json::from_str(text)
        .map_err(|e| e.to_string())
        .and_then(|v| Script::parse(&v))
        .map_err(|e| {
            Error::invalid(format!(
                "messages: fake:script takes a JSON script as the last user message: {e}"
            ))
        })
}

fn script_plan(script: Script, model: &str) -> Result<VecDeque<Step>, Error> {
    let mut steps = VecDeque::new();
    steps.push_back(Step::Part(Part::Meta {
        id: script.id.clone(),
        model: model.to_string(),
    }));
    let delay = Duration::from_millis(script.delay_ms);
    let fail_at = script.fail.as_ref().map(|f| f.after_chunks);
    let failure = script.fail.as_ref().map(failure_error).transpose()?;
    for (i, chunk) in script.chunks.into_iter().enumerate() {
        if fail_at == Some(i) {
            break;
        }
        if !delay.is_zero() {
            steps.push_back(Step::Sleep(delay));
        }
        steps.push_back(Step::Part(Part::Delta(match chunk {
            ScriptChunk::Text(t) => Delta::Text(t),
            ScriptChunk::Refusal(t) => Delta::Refusal(t),
            ScriptChunk::Reasoning { text, signature } => Delta::Reasoning(Reasoning {
                text,
                signature,
                redacted: String::new(),
            }),
            ScriptChunk::ToolCall {
                index,
                id,
                name,
                arguments,
            } => Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            },
        })));
    }
    if let Some(e) = failure {
        steps.push_back(Step::Fail(e));
        return Ok(steps);
    }
    if let Some(u) = script.usage {
        steps.push_back(Step::Part(Part::Usage(Usage {
            input: u.input_tokens,
            output: u.output_tokens,
            total: u.total_tokens,
            cache_read: u.cache_read_tokens,
            cache_creation: u.cache_creation_tokens,
            reasoning: u.reasoning_tokens,
        })));
    }
    let stop = match script.stop_reason.unwrap_or(ScriptStop::EndTurn) {
        ScriptStop::EndTurn => StopReason::EndTurn,
        ScriptStop::MaxTokens => StopReason::MaxTokens,
        ScriptStop::StopSequence => StopReason::StopSequence,
        ScriptStop::ToolUse => StopReason::ToolUse,
        ScriptStop::ContentFilter => StopReason::ContentFilter,
        ScriptStop::Other => StopReason::Other,
    };
    steps.push_back(Step::Part(Part::Stop(stop)));
    steps.push_back(Step::Part(Part::Done));
    Ok(steps)
}

fn failure_error(f: &ScriptFailure) -> Result<Error, Error> {
    if let Some(status) = f.http_status {
        return Ok(Error::from_upstream_status(status, &f.message)
            .with_provider("fake")
            .with_retry_after(
                f.retry_after_secs
                    .map(|s| Duration::from_secs(s.min(86_400))),
            ));
    }
    let (code, kind) = f
        .code()
        .map_err(|e| Error::invalid(format!("messages: fake:script {e}")))?;
    let message = if f.message.is_empty() {
        format!("scripted failure ({code})")
    } else {
        f.message.clone()
    };
    Ok(Error::new(kind, "SCRIPTED_FAILURE", message).with_provider("fake"))
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn tokens_keep_every_whitespace_character() {
        assert_eq!(tokens("a  b\nc"), vec!["a", " ", " ", "b", "\n", "c"]);
        assert_eq!(tokens(" 日本 語"), vec![" ", "日本", " ", "語"]);
        assert_eq!(tokens("").len(), 0);
        assert_eq!(tokens("Write me a song").concat(), "Write me a song");
    }
}
