//! The `azure` provider: Azure OpenAI, `azure:<deployment>`. Only the shell
//! differs from `openai`: the URL, the credential header and the content-filter
//! error; the request body and the decoder are Chat Completions' own (this is
//! a mode of the openai folder, so nothing is copied and no provider imports
//! another).
//!
//! From the environment, as Azure's SDKs read it:
//! - `AZURE_OPENAI_ENDPOINT` (or the file's `[providers.azure] base_url`):
//!   `https://<resource>.openai.azure.com`.
//! - `AZURE_OPENAI_API_KEY`, sent as the `api-key` header; else
//!   `AZURE_OPENAI_AD_TOKEN` (a Microsoft Entra ID access token), sent as
//!   `Authorization: Bearer`.
//! - `OPENAI_API_VERSION`: unset, `v1` or `latest` → the v1 API
//!   (`{endpoint}/openai/v1/chat/completions`, the deployment as the body's
//!   `model`); `preview` → the same with `?api-version=preview`; a dated
//!   version (`2024-10-21`) → the deployments API
//!   (`{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`).
//!
//! Content filtering: a filtered completion ends with finish_reason
//! `content_filter` (the decoder's CONTENT_FILTER stop); a filtered prompt is
//! an HTTP 400 with code `content_filter`, INVALID_ARGUMENT with reason
//! `UPSTREAM_CONTENT_FILTER` naming the filtered categories.

use super::{wire, OpenAiDecoder};
use crate::{
    error::{Error, Kind},
    provider::{http::Wire, Call, Decoder, ProviderInfo, Settings},
};

const NAME: &str = "azure";
const HOW: &str = "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN)";

/// Which Azure OpenAI URL shape a call uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/openai/v1/chat/completions`, with `?api-version=` when it is set (`preview`).
    V1(Option<String>),
    /// `/openai/deployments/{deployment}/chat/completions?api-version=…`.
    Deployments(String),
}

impl Api {
    /// From `OPENAI_API_VERSION` (see the module doc).
    pub fn from_version(v: Option<&str>) -> Result<Self, Error> {
        let v = v.map(str::trim).filter(|v| !v.is_empty());
        let Some(v) = v else {
            return Ok(Api::V1(None));
        };
        if !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(Error::new(
                Kind::FailedPrecondition,
                "PROVIDER_CONFIG_INVALID",
                "OPENAI_API_VERSION: an Azure OpenAI API version is letters, digits, '-' and '.' (e.g. 2024-10-21, preview or v1)",
            ));
        }
        Ok(match v {
            "v1" | "latest" => Api::V1(None),
            "preview" => Api::V1(Some(v.to_string())),
            dated => Api::Deployments(dated.to_string()),
        })
    }
}

/// The provider, configured from the file and the environment.
pub fn provider(
    config: &crate::config::Config,
    env: &crate::config::Env,
) -> Result<crate::provider::registry::Registered, Error> {
    let settings = Settings::resolve(
        config,
        env,
        NAME,
        &["AZURE_OPENAI_API_KEY"],
        "AZURE_OPENAI_ENDPOINT",
        "",
    );
    let token = env
        .get("AZURE_OPENAI_AD_TOKEN")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = &token {
        crate::error::register_secret(t);
    }
    if settings.base_url.is_empty() || (settings.api_key.is_none() && token.is_none()) {
        return Ok(crate::provider::pending(NAME, "AzureChatOpenAI", HOW));
    }
    let api = Api::from_version(env.get("OPENAI_API_VERSION").map(String::as_str))?;
    crate::provider::http::ready(settings, |s| Azure::new(s, token, api))
}

/// The Azure OpenAI shell around the Chat Completions wire.
pub struct Azure {
    info: ProviderInfo,
    settings: Settings,
    /// The Entra ID token, used when there is no API key.
    token: Option<String>,
    api: Api,
}

impl Azure {
    pub fn new(mut settings: Settings, token: Option<String>, api: Api) -> Self {
        // An endpoint given with the API's own path is the resource's endpoint.
        let (base, query) = crate::provider::settings::split_query(&settings.base_url);
        let base = base.trim_end_matches('/');
        let base = base
            .strip_suffix("/openai/v1")
            .or_else(|| base.strip_suffix("/openai"))
            .unwrap_or(base);
        settings.base_url = format!("{base}{query}");
        Self {
            info: ProviderInfo {
                name: NAME,
                chat_class: "AzureChatOpenAI",
                configured: true,
                base_url: settings.base_url.clone(),
                features: crate::provider::codec::features(
                    &["tools", "images", "refusal", "usage", "content_filter"],
                    wire::SUPPORTS,
                ),
                models: Vec::new(),
                how_to_configure: HOW,
            },
            settings,
            token,
            api,
        }
    }

    /// The URL for a deployment.
    pub fn url(&self, deployment: &str) -> Result<String, Error> {
        if deployment.is_empty()
            || !deployment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(Error::invalid(
                "model: an Azure deployment name is letters, digits, '-', '_' and '.' (azure:<deployment>)",
            ));
        }
        let (path, version) = match &self.api {
            Api::V1(v) => ("/openai/v1/chat/completions".to_string(), v.as_deref()),
            Api::Deployments(v) => (
                format!("/openai/deployments/{deployment}/chat/completions"),
                Some(v.as_str()),
            ),
        };
        let url = self.settings.endpoint(&path);
        Ok(match version {
            None => url,
            Some(v) if url.contains('?') => format!("{url}&api-version={v}"),
            Some(v) => format!("{url}?api-version={v}"),
        })
    }
}

impl Wire for Azure {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    fn request(
        &self,
        client: &reqwest::Client,
        call: &Call,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let body = wire::body(
            &call.model,
            &call.request,
            &call.options,
            self.settings.default_max_tokens,
        )?;
        let mut rb = crate::provider::post(client, &self.url(&call.model)?)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(crate::provider::codec::json_body(&body, "azure")?);
        if let Some(key) = &self.settings.api_key {
            rb = rb.header("api-key", crate::provider::secret_header(key)?);
        } else if let Some(token) = &self.token {
            rb = rb.header(
                reqwest::header::AUTHORIZATION,
                crate::provider::secret_header(&format!("Bearer {token}"))?,
            );
        }
        crate::provider::with_extra_headers(rb, &self.settings.headers)
    }

    fn decoder(&self, call: &Call) -> Box<dyn Decoder> {
        Box::new(OpenAiDecoder::with_usage_requested(
            call.options.include_usage,
        ))
    }

    fn http_error(&self, status: u16, body: &str) -> Error {
        content_filter_error(status, body).unwrap_or_else(|| super::http_error(status, body))
    }
}

/// Azure's filtered prompt: HTTP 400, `error.code` `content_filter`, the
/// categories in `error.innererror.content_filter_result`.
fn content_filter_error(status: u16, body: &str) -> Option<Error> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?;
    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let inner = e.get("innererror");
    let inner_code = inner
        .and_then(|i| i.get("code"))
        .and_then(|c| c.as_str())
        .unwrap_or("");
    if code != "content_filter" && inner_code != "ResponsibleAIPolicyViolation" {
        return None;
    }
    let filtered: Vec<&str> = inner
        .and_then(|i| i.get("content_filter_result"))
        .and_then(|r| r.as_object())
        .map(|r| {
            r.iter()
                .filter(|(_, c)| c.get("filtered").and_then(|f| f.as_bool()) == Some(true))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    let what = if filtered.is_empty() {
        String::new()
    } else {
        format!(" (filtered: {})", filtered.join(", "))
    };
    let message = crate::provider::http::generic_error_message(body);
    let base = Error::from_upstream_status(status, "");
    Some(
        Error::new(
            base.kind,
            "UPSTREAM_CONTENT_FILTER",
            format!(
                "Azure OpenAI's content filter refused the prompt (HTTP {status}){what}: {}",
                // Redacted before it is cut: a key cut short would escape redaction.
                crate::error::log_safe(&crate::error::redact(&message), 500)
            ),
        )
        .with_status(status),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure(base: &str, api: Api) -> Azure {
        Azure::new(
            Settings {
                base_url: base.into(),
                api_key: Some("k".into()),
                ..Settings::default()
            },
            None,
            api,
        )
    }

    #[test]
    fn urls_follow_the_api_version() {
        let v = |s: Option<&str>| Api::from_version(s).unwrap_or(Api::V1(None));
        assert_eq!(v(None), Api::V1(None));
        assert_eq!(v(Some("v1")), Api::V1(None));
        assert_eq!(v(Some("preview")), Api::V1(Some("preview".into())));
        assert_eq!(v(Some("2024-10-21")), Api::Deployments("2024-10-21".into()));
        assert!(Api::from_version(Some("2024&x=1")).is_err());
        let a = azure("https://r.openai.azure.com/", v(Some("2024-10-21")));
        assert_eq!(
            a.url("gpt-4o").ok(),
            Some("https://r.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21".into())
        );
        assert!(a.url("../x").is_err() && a.url("a/b").is_err() && a.url("a?b").is_err());
        let a = azure("https://r.openai.azure.com/openai/v1/", v(None));
        assert_eq!(
            a.url("gpt-4o").ok(),
            Some("https://r.openai.azure.com/openai/v1/chat/completions".into())
        );
        let a = azure("https://r.openai.azure.com", v(Some("preview")));
        assert_eq!(
            a.url("d").ok(),
            Some(
                "https://r.openai.azure.com/openai/v1/chat/completions?api-version=preview".into()
            )
        );
    }

    #[test]
    fn a_filtered_prompt_is_invalid_argument_naming_the_categories() {
        let body = r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}}}}"#;
        let e = azure("https://r", Api::V1(None)).http_error(400, body);
        assert_eq!(e.kind, Kind::InvalidArgument);
        assert_eq!(e.reason, "UPSTREAM_CONTENT_FILTER");
        assert!(e.message.contains("filtered: violence"), "{}", e.message);
        let e = azure("https://r", Api::V1(None)).http_error(
            404,
            r#"{"error":{"code":"DeploymentNotFound","message":"no"}}"#,
        );
        assert_eq!(e.kind, Kind::NotFound);
    }
}
