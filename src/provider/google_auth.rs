//! Google Cloud OAuth2 access tokens for Vertex AI: from a service-account key
//! (`GOOGLE_APPLICATION_CREDENTIALS`: an RS256-signed JWT with `iss`/`sub` =
//! the account, `aud` = its `token_uri`, the `cloud-platform` scope, exchanged
//! at `token_uri` with the jwt-bearer grant), or from the GCE metadata server
//! (`GCE_METADATA_HOST`, default `metadata.google.internal`) when there is no
//! key file. A token is cached and reused until 5 minutes before it expires;
//! one fetch at a time (concurrent calls wait for it, no stampede).
//!
//! Signing uses `ring` (already in the build through rustls; RSA PKCS#1 v1.5
//! SHA-256 over the JWT's header and claims) rather than a JWT crate, whose
//! current releases bring either a second RSA implementation or aws-lc.
//!
//! A refused key (the token endpoint's 4xx) is PERMISSION_DENIED (the contract's
//! class for an upstream refusing the server's credentials); an unreachable or
//! failing token endpoint is UNAVAILABLE. Neither the key nor a token ever
//! appears in a message: both are registered for redaction.

use std::{sync::Arc, time::Duration};

use serde::Deserialize;
use tokio::{sync::Mutex, time::Instant};

use crate::{
    config::Env,
    error::{Error, Kind},
};

/// The scope Vertex AI needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// A token is refreshed this long before it expires.
pub const REFRESH_EARLY: Duration = Duration::from_secs(300);
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A service-account key file (the fields used).
#[derive(Deserialize)]
struct KeyFile {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: String,
    #[serde(default)]
    token_uri: String,
    #[serde(default)]
    project_id: String,
}

/// Where tokens come from.
enum Source {
    ServiceAccount {
        email: String,
        key_id: String,
        key: Box<ring::signature::RsaKeyPair>,
        token_uri: String,
    },
    Metadata {
        url: String,
    },
}

struct Cached {
    token: String,
    refresh_at: Instant,
}

/// A cached, single-flight source of access tokens.
pub struct TokenSource {
    source: Source,
    client: reqwest::Client,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.source {
            Source::ServiceAccount { email, .. } => format!("service account {email}"),
            Source::Metadata { url } => format!("metadata server {url}"),
        };
        f.debug_struct("TokenSource")
            .field("source", &what)
            .finish()
    }
}

/// Where Vertex AI is reached: the base URL, project, location and tokens.
#[derive(Clone, Debug)]
pub struct VertexSite {
    /// `https://{location}-aiplatform.googleapis.com` unless overridden; no trailing slash.
    pub base_url: String,
    pub project: String,
    pub location: String,
    pub tokens: Arc<TokenSource>,
}

impl VertexSite {
    /// `{base}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{method}`.
    /// The model must be a plain model name (letters, digits, `-._@`).
    pub fn model_url(&self, publisher: &str, model: &str, method: &str) -> Result<String, Error> {
        if model.is_empty()
            || !model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@'))
        {
            return Err(Error::invalid(format!(
                "model: {:?} is not a Vertex AI model name (letters, digits, '-', '.', '_', '@')",
                crate::error::log_safe(model, 100)
            )));
        }
        let (base, query) = super::settings::split_query(&self.base_url);
        let base = base.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let query = query.strip_prefix('?').unwrap_or(query);
        let sep = if method.contains('?') { '&' } else { '?' };
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("{sep}{query}")
        };
        Ok(format!(
            "{base}/v1/projects/{}/locations/{}/publishers/{publisher}/models/{model}:{method}{query}",
            self.project, self.location
        ))
    }
}

/// The default Vertex AI base URL for a location (`global` has no prefix).
pub fn default_base_url(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_string()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

/// What the environment gives: the token source and the key file's project.
pub struct Discovered {
    pub tokens: Arc<TokenSource>,
    pub project_id: Option<String>,
}

fn not_configured(message: String) -> Error {
    Error::new(Kind::FailedPrecondition, "PROVIDER_NOT_CONFIGURED", message)
}

impl TokenSource {
    /// From `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key file), else
    /// the metadata server. A key file that cannot be read or used is an error
    /// naming the file (never its contents).
    pub fn discover(env: &Env, client: reqwest::Client) -> Result<Discovered, Error> {
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(path) = get("GOOGLE_APPLICATION_CREDENTIALS") {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                not_configured(format!(
                    "GOOGLE_APPLICATION_CREDENTIALS: cannot read {path}: {e}"
                ))
            })?;
            let (source, project) = Self::from_key_json(&text).map_err(|m| {
                not_configured(format!("GOOGLE_APPLICATION_CREDENTIALS ({path}): {m}"))
            })?;
            return Ok(Discovered {
                tokens: Arc::new(Self::new(source, client)),
                project_id: project,
            });
        }
        let host = get("GCE_METADATA_HOST").unwrap_or_else(|| "metadata.google.internal".into());
        let url =
            format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
        Ok(Discovered {
            tokens: Arc::new(Self::new(Source::Metadata { url }, client)),
            project_id: None,
        })
    }

    fn new(source: Source, client: reqwest::Client) -> Self {
        Self {
            source,
            client,
            cache: Mutex::new(None),
        }
    }

    /// A service-account key's JSON: the signing key and the project.
    fn from_key_json(text: &str) -> Result<(Source, Option<String>), String> {
        let k: KeyFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a service-account key file (JSON error at line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        crate::error::register_secret(&k.private_key);
        if k.kind != "service_account" {
            return Err(format!(
                "the key file's type is {:?}; chatwire takes a service_account key",
                crate::error::log_safe(&k.kind, 40)
            ));
        }
        if k.client_email.is_empty() || k.private_key.is_empty() {
            return Err("the key file has no client_email or private_key".into());
        }
        let der = pem_der(&k.private_key).ok_or("its private_key is not a PEM PRIVATE KEY")?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|_| "its private_key is not an RSA PKCS#8 key".to_string())?;
        let token_uri = if k.token_uri.is_empty() {
            "https://oauth2.googleapis.com/token".to_string()
        } else {
            k.token_uri
        };
        Ok((
            Source::ServiceAccount {
                email: k.client_email,
                key_id: k.private_key_id,
                key: Box::new(key),
                token_uri,
            },
            (!k.project_id.is_empty()).then_some(k.project_id),
        ))
    }

    /// An access token: the cached one while it has more than 5 minutes left,
    /// else a fresh one (one fetch at a time; waiters reuse its result).
    pub async fn token(&self) -> Result<String, Error> {
        self.cached(|| self.fetch()).await
    }

    /// The cache and the single flight around `fetch` (a token and its lifetime).
    async fn cached<F, Fut>(&self, fetch: F) -> Result<String, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Duration), Error>>,
    {
        // Held across the fetch: concurrent callers wait and then reuse it.
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = fetch().await?;
        crate::error::register_secret(&token);
        let refresh_at = Instant::now() + lifetime.saturating_sub(REFRESH_EARLY);
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    async fn fetch(&self) -> Result<(String, Duration), Error> {
        let request = match &self.source {
            Source::ServiceAccount {
                email,
                key_id,
                key,
                token_uri,
            } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let jwt = sign_jwt(key, key_id, email, token_uri, now)?;
                self.client
                    .post(token_uri)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(format!(
                        "grant_type={}&assertion={jwt}",
                        JWT_BEARER.replace(':', "%3A")
                    ))
            }
            Source::Metadata { url } => self.client.get(url).header("Metadata-Flavor", "Google"),
        };
        let unavailable =
            |m: String| Error::new(Kind::Unavailable, "PROVIDER_TOKEN_UNAVAILABLE", m);
        let response = request.send().await.map_err(|e| {
            unavailable(format!(
                "getting a Google access token failed: the token endpoint could not be reached ({})",
                if e.is_connect() { "connection refused or unreachable" } else { "request failed" }
            ))
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            // Only an error body is quoted, redacted whole first; a token is
            // read from the body as sent.
            let detail = token_error_detail(&crate::error::redact(&body));
            // Redacted again: the detail read from the JSON may spell a secret in escapes.
            let message = crate::error::redact(&format!("getting a Google access token failed: the token endpoint answered HTTP {status}{detail}"));
            return Err(if (400..500).contains(&status) && status != 429 {
                Error::new(Kind::PermissionDenied, "PROVIDER_TOKEN_REFUSED", message)
            } else {
                unavailable(message)
            }
            .with_status(status));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let t: TokenResponse = serde_json::from_str(&body).map_err(|_| {
            unavailable("getting a Google access token failed: the token endpoint's answer has no access_token".into())
        })?;
        Ok((
            t.access_token,
            Duration::from_secs(t.expires_in.unwrap_or(3600).min(86_400)),
        ))
    }
}

/// `: <error> (<error_description>)` of an OAuth error body, if any.
fn token_error_detail(body: &str) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        #[serde(default)]
        error: serde_json::Value,
        #[serde(default)]
        error_description: String,
    }
    let Ok(e) = serde_json::from_str::<OAuthError>(body) else {
        return String::new();
    };
    let error = match &e.error {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => o
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    // Redacted before they are cut: a secret cut short would escape redaction.
    let error = crate::error::redact(&error);
    let description = crate::error::redact(&e.error_description);
    match (error.is_empty(), description.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(": {}", crate::error::log_safe(&error, 200)),
        (_, false) => format!(
            ": {} ({})",
            crate::error::log_safe(&error, 100),
            crate::error::log_safe(&description, 300)
        ),
    }
}

/// Base64url without padding (JWT's encoding).
fn b64url(bytes: &[u8]) -> String {
    super::codec::base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The signed assertion: RS256 over `header.claims`, valid for an hour from `now`.
fn sign_jwt(
    key: &ring::signature::RsaKeyPair,
    key_id: &str,
    email: &str,
    token_uri: &str,
    now: u64,
) -> Result<String, Error> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if !key_id.is_empty() {
        header["kid"] = key_id.into();
    }
    let claims = serde_json::json!({
        "iss": email,
        "sub": email,
        "aud": token_uri,
        "scope": SCOPE,
        "iat": now,
        "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| Error::internal("signing the Google service-account assertion failed"))?;
    Ok(format!("{signing_input}.{}", b64url(&signature)))
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem[start..].find("-----END PRIVATE KEY-----")? + start;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

#[cfg(test)]
#[path = "google_auth_tests.rs"]
mod tests;
