//! Callers' auth: when tokens are configured, every chat RPC needs
//! `authorization: Bearer <token>`. Health and reflection stay open (they are
//! served without this interceptor). Tokens are compared in constant time and
//! never logged or echoed.

use std::sync::Arc;

use tonic::{Request, Status};

use super::status::to_status;
use crate::error::{Error, Kind};

/// The configured tokens (empty: auth is off).
#[derive(Clone, Default)]
pub(crate) struct Tokens(Arc<Vec<Vec<u8>>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    pub(crate) fn new(tokens: impl IntoIterator<Item = String>) -> Self {
        Self(Arc::new(
            tokens
                .into_iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .map(String::into_bytes)
                .collect(),
        ))
    }

    pub(crate) fn is_enabled(&self) -> bool {
        !self.0.is_empty()
    }

    /// True when `presented` equals one of the tokens; every token is compared
    /// in full, so the time taken says nothing about which bytes matched.
    pub(crate) fn accepts(&self, presented: &[u8]) -> bool {
        let mut ok = false;
        for t in self.0.iter() {
            ok |= ct_eq(t, presented);
        }
        ok
    }

    /// The interceptor for the chat service.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check<T>(&self, req: Request<T>) -> Result<Request<T>, Status> {
        if !self.is_enabled() {
            return Ok(req);
        }
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // The scheme is case-insensitive (RFC 9110 §11.1): `BEARER` counts.
        let token = match header.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim_start(),
            _ => "",
        };
        if !token.is_empty() && self.accepts(token.as_bytes()) {
            return Ok(req);
        }
        let message = if header.is_empty() {
            "this server requires `authorization: Bearer <token>` on chat calls"
        } else {
            "the bearer token was not accepted"
        };
        Err(to_status(&Error::new(
            Kind::Unauthenticated,
            "UNAUTHENTICATED",
            message,
        )))
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_exact_tokens() {
        let t = Tokens::new(crate::config::parse_token_list("alpha, beta\n#comment\n"));
        assert!(t.accepts(b"alpha") && t.accepts(b"beta"));
        assert!(!t.accepts(b"alph") && !t.accepts(b"alphaa") && !t.accepts(b""));
        assert!(!Tokens::default().is_enabled());
    }
}
