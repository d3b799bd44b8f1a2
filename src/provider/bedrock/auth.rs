//! Bedrock's credentials: an API key (`AWS_BEARER_TOKEN_BEDROCK`, sent as
//! `Authorization: Bearer`, no signing), or AWS credentials from the standard
//! chain's static sources — the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the shared profile files
//! (`~/.aws/credentials`, `~/.aws/config`, `AWS_PROFILE`,
//! `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`) — used to sign each
//! request with SigV4 by AWS's own signer (`aws-sigv4`).
//!
//! Why not `aws-config`: it brings AWS's whole runtime (its own hyper-based
//! HTTPS client, SSO and STS SDK crates) beside reqwest; the static sources are
//! all a gateway process needs, and a profile that only names a role, SSO or a
//! credential process is reported at start-up as unsupported, never guessed at.

use std::{collections::BTreeMap, time::SystemTime};

use crate::{
    config::Env,
    error::{Error, Kind},
};

/// A static AWS credential set. Never logged: `Debug` shows the key id only.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How a request is authorized.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: Bearer <AWS_BEARER_TOKEN_BEDROCK>`.
    Bearer(String),
    /// SigV4 with these credentials, for this region.
    SigV4(AwsCredentials),
}

/// What the chain found: the credentials (if any), the region (if any), and
/// why a profile could not be used (for the start-up warning).
#[derive(Debug, Default)]
pub struct Found {
    pub credentials: Option<AwsCredentials>,
    pub region: Option<String>,
    pub problem: Option<String>,
}

fn non_empty(env: &Env, k: &str) -> Option<String> {
    env.get(k)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The standard chain's static sources: the environment first, then the
/// profile (credentials file over config file); the region from
/// `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
pub fn discover(env: &Env) -> Found {
    let mut found = Found::default();
    if let (Some(id), Some(secret)) = (
        non_empty(env, "AWS_ACCESS_KEY_ID"),
        non_empty(env, "AWS_SECRET_ACCESS_KEY"),
    ) {
        found.credentials = Some(AwsCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: non_empty(env, "AWS_SESSION_TOKEN"),
        });
    }
    found.region = non_empty(env, "AWS_REGION").or_else(|| non_empty(env, "AWS_DEFAULT_REGION"));
    let profile = non_empty(env, "AWS_PROFILE").unwrap_or_else(|| "default".to_string());
    let home = non_empty(env, "HOME").or_else(|| non_empty(env, "USERPROFILE"));
    let path = |var: &str, file: &str| {
        non_empty(env, var).or_else(|| home.as_ref().map(|h| format!("{h}/.aws/{file}")))
    };
    let read = |p: Option<String>| {
        p.and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| parse_ini(&t))
            .unwrap_or_default()
    };
    let credentials = read(path("AWS_SHARED_CREDENTIALS_FILE", "credentials"));
    let config = read(path("AWS_CONFIG_FILE", "config"));
    let in_creds = credentials.get(&profile);
    let in_config = config.get(&format!("profile {profile}")).or_else(|| {
        (profile == "default")
            .then(|| config.get("default"))
            .flatten()
    });
    if found.region.is_none() {
        found.region = in_config.and_then(|s| s.get("region")).cloned();
    }
    if found.credentials.is_none() {
        for section in [in_creds, in_config].into_iter().flatten() {
            if let (Some(id), Some(secret)) = (
                section.get("aws_access_key_id"),
                section.get("aws_secret_access_key"),
            ) {
                found.credentials = Some(AwsCredentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: section.get("aws_session_token").cloned(),
                });
                break;
            }
        }
    }
    if found.credentials.is_none() {
        let unsupported = [in_creds, in_config].into_iter().flatten().find_map(|s| {
            [
                "role_arn",
                "sso_session",
                "sso_start_url",
                "credential_process",
                "web_identity_token_file",
            ]
            .into_iter()
            .find(|k| s.contains_key(*k))
        });
        if let Some(k) = unsupported {
            found.problem = Some(format!(
                "AWS profile {profile:?} gets its credentials through {k}, which chatwire does not run; export static credentials (e.g. `aws configure export-credentials --format env`) or set AWS_BEARER_TOKEN_BEDROCK"
            ));
        }
    }
    if let Some(c) = &found.credentials {
        crate::error::register_secret(&c.secret_access_key);
        if let Some(t) = &c.session_token {
            crate::error::register_secret(t);
        }
    }
    found
}

/// An INI file as AWS reads its shared files: `[section]` headers, `key =
/// value` lines (keys lowercased), `#` and `;` comment lines; an indented line
/// continues the key before it (nested settings such as `s3 =`), so it is
/// never read as a key of its own.
pub fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name.split(']').next().unwrap_or_default();
            // `[profile  name]` and `[ name ]` are the same section.
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            section = Some(name);
            continue;
        }
        let (Some(s), Some((k, v))) = (&section, line.split_once('=')) else {
            continue;
        };
        let v = v.trim();
        if !v.is_empty() {
            out.entry(s.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.to_string());
        }
    }
    out
}

/// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`)
/// for a request, from AWS's signer. `headers` are the request's own headers
/// to sign beside `host`.
pub fn sign(
    credentials: &AwsCredentials,
    region: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(&'static str, String, bool)>, Error> {
    use aws_sigv4::{
        http_request::{sign, SignableBody, SignableRequest, SigningSettings},
        sign::v4,
    };
    let failed = |what: &str| {
        Error::new(
            Kind::FailedPrecondition,
            "PROVIDER_SIGNING_FAILED",
            format!("signing the bedrock request with SigV4 failed: {what}"),
        )
    };
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.clone(),
        credentials.session_token.clone(),
        None,
        "chatwire",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| failed(&e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| failed(&e.to_string()))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_string(), h.sensitive()))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_keys_comments_and_nested_settings() {
        let text = "# top\n[default]\naws_access_key_id = AKIDDEFAULT\nAWS_Secret_Access_Key=s3cr3t/with=equals\n\n[profile  dev ]\nregion = eu-west-1\ns3 =\n  region = ignored\n; comment\n[ other ]\nkey=\n";
        let ini = parse_ini(text);
        assert_eq!(ini["default"]["aws_access_key_id"], "AKIDDEFAULT");
        assert_eq!(
            ini["default"]["aws_secret_access_key"],
            "s3cr3t/with=equals"
        );
        assert_eq!(ini["profile dev"]["region"], "eu-west-1");
        assert_eq!(ini["profile dev"].len(), 1);
        assert!(ini["other"].is_empty());
    }

    #[test]
    fn the_chain_env_then_credentials_file_then_config_file() {
        let dir = std::env::temp_dir().join(format!("chatwire-aws-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let creds = dir.join("credentials");
        let config = dir.join("config");
        std::fs::write(
            &creds,
            "[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = workSECRET123\naws_session_token = workTOKEN123\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[profile work]\nregion = ap-south-1\n[profile cfg]\naws_access_key_id = AKIDCFG\naws_secret_access_key = cfgSECRET123\n[profile sso]\nsso_session = corp\n[default]\nregion = us-west-2\n",
        )
        .unwrap();
        let mut env: Env = [
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ("AWS_PROFILE", "work"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let f = discover(&env);
        let c = f.credentials.unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("AKIDWORK", Some("workTOKEN123"))
        );
        assert_eq!(f.region.as_deref(), Some("ap-south-1"));
        assert!(!format!("{c:?}").contains("workSECRET123"));

        env.insert("AWS_PROFILE".into(), "cfg".into());
        let f = discover(&env);
        assert_eq!(f.credentials.unwrap().access_key_id, "AKIDCFG");
        assert_eq!(f.region, None);

        env.insert("AWS_PROFILE".into(), "sso".into());
        let f = discover(&env);
        assert!(f.credentials.is_none());
        assert!(f.problem.unwrap().contains("sso_session"));

        env.remove("AWS_PROFILE");
        env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDENV".into());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "envSECRET123".into());
        env.insert("AWS_DEFAULT_REGION".into(), "eu-central-1".into());
        let f = discover(&env);
        assert_eq!(f.credentials.unwrap().access_key_id, "AKIDENV");
        assert_eq!(f.region.as_deref(), Some("eu-central-1"));
        env.insert("AWS_REGION".into(), "us-east-2".into());
        assert_eq!(discover(&env).region.as_deref(), Some("us-east-2"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
