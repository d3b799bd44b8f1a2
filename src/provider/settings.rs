//! A remote provider's settings (base URL, key, extra headers, resolved from
//! the file and the environment) and the credential-safe ways to use them:
//! sensitive header values, URLs shown without their userinfo.

use std::{
    collections::HashMap,
    sync::{LazyLock, RwLock},
};

use crate::{
    config::{Config, Env},
    error::{Error, Kind},
};

/// A header value holding a credential: marked sensitive, so HTTP logging skips it.
pub fn secret_header(key: &str) -> Result<reqwest::header::HeaderValue, Error> {
    let mut v = reqwest::header::HeaderValue::from_str(key).map_err(|_| {
        Error::new(
            Kind::FailedPrecondition,
            "PROVIDER_KEY_INVALID",
            "the provider's API key in this server's environment contains characters a header cannot carry",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Header names that carry credentials (by the words in them).
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["auth", "key", "token", "secret", "cookie"]
        .iter()
        .any(|w| n.contains(w))
}

/// Adds the config file's extra headers; credential-like ones are marked sensitive.
pub fn with_extra_headers(
    mut rb: reqwest::RequestBuilder,
    headers: &[(String, String)],
) -> Result<reqwest::RequestBuilder, Error> {
    for (k, v) in headers {
        rb = if is_secret_header(k) {
            rb.header(k.as_str(), secret_header(v)?)
        } else {
            rb.header(k.as_str(), v.as_str())
        };
    }
    Ok(rb)
}

/// The most distinct upstream URLs kept parsed (`post`). A provider sends its
/// calls to one URL, or one per model where the model is in the path (Azure,
/// Bedrock, Gemini, Vertex); past the cap a URL is parsed per call, as before.
const PARSED_URLS_MAX: usize = 256;

/// Upstream URLs, each parsed once (`post`). It holds what `Settings` holds
/// for the process's life anyway (a URL's userinfo or query may be a
/// credential): never log it (`Url`'s `Debug` shows a password).
static PARSED_URLS: LazyLock<RwLock<HashMap<String, reqwest::Url>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// A POST request to `url`, with the URL parsed once per distinct URL instead
/// of on every call: reqwest parses a URL given as a string (its host through
/// the IDNA rules) each time, about 7,000 instructions; the memo saves some
/// 5,700 of a short call's 222,000. A URL that does not parse, or has no host,
/// is handed to reqwest as a string, which reports it exactly as before.
pub fn post(client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    match parsed(url) {
        Some(url) => client.post(url),
        None => client.post(url),
    }
}

/// `url` parsed (from the memo when it was parsed before), or `None` when
/// reqwest would refuse it. Once the memo is full (callers name the model in
/// some URLs), a URL not in it is parsed per call, under no write lock.
fn parsed(url: &str) -> Option<reqwest::Url> {
    let full = match PARSED_URLS.read() {
        Ok(memo) => match memo.get(url) {
            Some(u) => return Some(u.clone()),
            None => memo.len() >= PARSED_URLS_MAX,
        },
        Err(_) => true,
    };
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(reqwest::Url::has_host)?;
    if !full {
        if let Ok(mut memo) = PARSED_URLS.write() {
            if memo.len() < PARSED_URLS_MAX {
                memo.insert(url.to_string(), parsed.clone());
            }
        }
    }
    Some(parsed)
}

/// A URL for display: any `user:password@` removed.
pub fn display_url(url: &str) -> String {
    let (base, query) = split_query(url);
    let shown = match base.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_string(),
    };
    // A query may carry a key (`?api-key=`): shown as present, never its values.
    if query.is_empty() {
        shown
    } else {
        format!("{shown}?<redacted>")
    }
}

/// The URL without its `user:pass@`.
fn strip_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{}", &rest[end..]),
        None => url.to_string(),
    }
}

/// A URL as (everything before the query, the query with its `?`, or "").
/// A fragment is dropped: it never reaches a server.
pub fn split_query(url: &str) -> (&str, &str) {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    match url.find('?') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    }
}

/// Credentials a URL carries: the userinfo's password (and user), and the
/// query's values. Each is registered for redaction.
fn register_url_secrets(url: &str) {
    let (base, query) = split_query(url);
    if let Some((_, rest)) = base.split_once("://") {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            crate::error::register_secret(password);
            crate::error::register_secret(user);
        }
    }
    for pair in query.trim_start_matches('?').split('&') {
        if let Some((_, value)) = pair.split_once('=') {
            crate::error::register_secret(value);
        }
    }
}

/// A remote provider's resolved settings: file < environment (flags have none).
#[derive(Clone, Default)]
pub struct Settings {
    /// The base URL, without a trailing slash.
    pub base_url: String,
    /// The API key, if any. Never logged, never in an error.
    pub api_key: Option<String>,
    /// Extra headers sent on every request (from the file).
    pub headers: Vec<(String, String)>,
    /// Default max tokens (from the file).
    pub default_max_tokens: Option<u32>,
    /// True when the base URL was given explicitly (file or environment).
    pub explicit_base_url: bool,
    /// The cap on one upstream frame.
    pub max_frame: usize,
    /// Extra trust anchors for upstream TLS (PEM), beside the web roots.
    pub upstream_ca: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base_url", &display_url(&self.base_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("default_max_tokens", &self.default_max_tokens)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The URL of `path` under the base URL, with the base URL's query (e.g.
    /// an `api-version`) kept after the path, where a server reads it.
    pub fn endpoint(&self, path: &str) -> String {
        let (base, query) = split_query(&self.base_url);
        format!("{}{path}{query}", base.trim_end_matches('/'))
    }

    /// `endpoint(path)` for a provider that sends its key as `Authorization:
    /// Bearer`: a `user:pass@` in the base URL would become a second
    /// `Authorization` (Basic) header, which HTTP forbids, so with a key the
    /// userinfo is left out (the key wins; `provider()` warns at start-up).
    pub fn bearer_endpoint(&self, path: &str) -> String {
        let url = self.endpoint(path);
        if self.api_key.is_none() {
            return url;
        }
        strip_userinfo(&url)
    }

    /// True when the base URL carries `user:pass@`.
    pub fn has_userinfo(&self) -> bool {
        strip_userinfo(&self.base_url) != self.base_url
    }

    /// `key_envs` are tried in order (the file's `api_key_env` first);
    /// `base_env` overrides the file's `base_url`, which overrides `default_base`.
    pub fn resolve(
        config: &Config,
        env: &Env,
        name: &str,
        key_envs: &[&str],
        base_env: &str,
        default_base: &str,
    ) -> Self {
        let file = config.providers.get(name).cloned().unwrap_or_default();
        let non_empty = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let api_key = file
            .api_key_env
            .as_deref()
            .and_then(non_empty)
            .or_else(|| key_envs.iter().find_map(|k| non_empty(k)));
        let explicit = non_empty(base_env).or(file.base_url.clone());
        let base_url = explicit.clone().unwrap_or_else(|| default_base.to_string());
        let (base, query) = split_query(base_url.trim());
        let base_url = format!("{}{query}", base.trim_end_matches('/'));
        register_url_secrets(&base_url);
        if let Some(k) = &api_key {
            crate::error::register_secret(k);
        }
        for (k, v) in &file.headers {
            if is_secret_header(k) {
                crate::error::register_secret(v);
                // "Bearer sk-…": upstreams echo the token alone.
                if let Some(last) = v.split_whitespace().last() {
                    crate::error::register_secret(last);
                }
            }
        }
        Self {
            base_url,
            api_key,
            headers: file.headers.into_iter().collect(),
            default_max_tokens: file.default_max_tokens,
            explicit_base_url: explicit.is_some(),
            max_frame: config.max_frame_bytes,
            upstream_ca: config.upstream_ca.clone(),
        }
    }

    /// The HTTP clients this provider's calls go through.
    pub fn clients(&self) -> Result<super::clients::Clients, Error> {
        super::clients::Clients::new(self.upstream_ca.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `post` sends a request to the URL reqwest would have parsed from the
    /// string, first time and from the memo alike, and a URL reqwest refuses
    /// fails the same way; the memo stops growing at its cap.
    #[test]
    fn parsed_urls_are_the_urls_reqwest_would_send_to() {
        let client = reqwest::Client::new();
        let urls = [
            "http://127.0.0.1:9/v1/chat/completions",
            "https://user:pw@proxy.example/v1/messages?api-version=1&k=v",
            "https://EXAMPLE.com/a b/../c/./d%2Fe/models/m:streamGenerateContent?alt=sse",
            "https://b\u{fc}cher.example/v1",
            "http://[::1]:8080/api/chat",
            "http://h/model/anthropic.claude-3%3A0/converse-stream#frag",
            "not a url",
            "unix:/var/run/x.sock",
            "http://",
            "",
        ];
        for url in urls {
            let direct = client.post(url).build();
            for _ in 0..2 {
                let ours = post(&client, url).build();
                match (&direct, &ours) {
                    (Ok(a), Ok(b)) => assert_eq!(a.url(), b.url(), "{url}"),
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{url}"),
                    _ => panic!("{url}: {direct:?} against {ours:?}"),
                }
            }
        }
        for i in 0..PARSED_URLS_MAX + 10 {
            let _ = post(&client, &format!("http://h/models/m{i}"));
        }
        assert_eq!(
            PARSED_URLS.read().map(|m| m.len()).ok(),
            Some(PARSED_URLS_MAX)
        );
    }

    #[test]
    fn display_urls_drop_credentials() {
        assert_eq!(
            display_url("https://user:pw@proxy.example/v1"),
            "https://proxy.example/v1"
        );
        assert_eq!(display_url("https://host?x=a@b"), "https://host?<redacted>");
        assert_eq!(
            display_url("https://u:p@host/v1?api-key=k#f"),
            "https://host/v1?<redacted>"
        );
        let s = Settings {
            base_url: "http://h/v1?api-version=2024-10-21".into(),
            ..Settings::default()
        };
        assert_eq!(
            s.endpoint("/chat/completions"),
            "http://h/v1/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            display_url("http://127.0.0.1:11434"),
            "http://127.0.0.1:11434"
        );
        assert!(is_secret_header("X-Api-Key") && is_secret_header("Authorization"));
        assert!(!is_secret_header("HTTP-Referer"));
    }
}
