//! Browsers: gRPC-Web on the main port (tonic-web translates it to gRPC in
//! front of the same services, limits and auth), CORS for the origins the
//! operator lists (none by default: cross-origin calls refused), and the
//! optional playground page.

use std::{
    convert::Infallible,
    future::{ready, Ready},
    task::{Context, Poll},
    time::Duration,
};

use tonic::{
    codegen::{
        http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode},
        Service,
    },
    service::AxumBody,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::Error;

/// The playground: one static page (HTML + vanilla JS, a gRPC-Web client over
/// fetch), built into the binary.
pub(super) const PLAYGROUND_HTML: &str = include_str!("playground/index.html");

/// Paths the playground is served at when enabled.
pub(super) const PLAYGROUND_PATHS: [&str; 2] = ["/", "/playground"];

/// Request headers a gRPC-Web client sends.
const ALLOW_HEADERS: [&str; 6] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "grpc-accept-encoding",
    "authorization",
];

/// Response headers a browser script must be able to read: the status and
/// its details arrive as headers on a trailers-only response.
const EXPOSE_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// CORS for gRPC-Web: exactly the listed origins (compared as sent), POST
/// only, gRPC-Web's headers in, the status headers out; no credentials mode
/// (a caller's token travels in `authorization`, which must be allowed like
/// any other header). With no origin listed no cross-origin request is
/// allowed: a preflight gets no `access-control-allow-origin`.
pub(crate) fn cors(origins: &[String]) -> Result<CorsLayer, Error> {
    let origins = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o)
                .map_err(|_| Error::invalid(format!("cors origin {o:?}: not a header value")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers(ALLOW_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSE_HEADERS.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE))
}

/// Serves the playground page (GET and HEAD; other methods get 405), with a
/// content-security policy that lets it talk to this origin only.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Playground;

impl<B> Service<Request<B>> for Playground {
    type Response = Response<AxumBody>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut resp = Response::new(AxumBody::from(PLAYGROUND_HTML));
        if req.method() != Method::GET && req.method() != Method::HEAD {
            *resp.body_mut() = AxumBody::empty();
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return ready(Ok(resp));
        }
        let h = resp.headers_mut();
        for (name, value) in [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
        ready(Ok(resp))
    }
}
