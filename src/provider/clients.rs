//! The HTTP clients one provider's calls go through, and how many calls each
//! carries.
//!
//! reqwest offers HTTP/2 by ALPN over TLS, and its pool then keeps one
//! connection per origin, shared by every call (as HTTP/2 asks of clients).
//! An upstream caps the streams open at once on a connection
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`, 100 or more in practice); hyper parks
//! the calls beyond it until a stream frees, so one client would hold a
//! replica's concurrent calls to one HTTP/2 provider to that cap, the rest
//! waiting into the first-chunk timer. A provider therefore has a set of
//! clients, each with its own pool: a call leases the first one carrying fewer
//! than [`STREAMS_PER_CLIENT`] calls, a new client joins the set when every one
//! is full, and the lease lasts until the upstream's answer ends or fails (or
//! the call's body is dropped, if that comes first). Over
//! HTTP/1.1 (a connection per call anyway) the set changes nothing but which
//! pool an idle connection waits in.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::Mutex;

use super::connect_gate::ConnectGate;
use crate::error::{Error, Kind};

/// Calls one client carries at once: RFC 9113 §6.5.2 recommends that servers
/// allow at least 100 concurrent streams, and providers often allow 100–256.
pub const STREAMS_PER_CLIENT: usize = 100;

/// How much of one call's answer an HTTP/2 upstream may send ahead of what
/// chatwire has read (its stream's receive window): what a call whose caller
/// stops reading can hold in memory here, plus h2's bookkeeping for each
/// DATA frame buffered (about 240 bytes each, by a reading of h2's source,
/// not measured; with frames that small it exceeds the data). 256 KiB is far
/// above any token rate over any round trip (a multi-MB inline image takes a
/// round trip per 256 KiB).
pub const STREAM_WINDOW: u32 = 256 << 10;

/// The connection's receive window. The bytes its calls hold are already
/// bounded by [`STREAMS_PER_CLIENT`] × [`STREAM_WINDOW`] (25 MiB), so this
/// only has to be larger than that, for two reasons:
/// - callers who stop reading never fill the connection's window, so the other
///   calls on it keep streaming (hyper's default, 5 MiB for 2 MiB per stream,
///   lets three stalled calls stop the rest);
/// - h2's flood protection charges every buffered DATA frame shorter than
///   256 bytes against half the connection's window and, when that runs out,
///   closes the connection (GOAWAY `ENHANCE_YOUR_CALM`), failing every call on
///   it: with 25 MiB, four callers that stop reading an answer sent in
///   16-byte frames would do that. Half of 1 GiB covers 100 such calls with
///   frames down to about 12 bytes.
const CONNECTION_WINDOW: u32 = 1 << 30;

/// The connect timeout of every upstream connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One provider's clients (cheap to clone: the set is shared).
#[derive(Clone)]
pub struct Clients {
    inner: Arc<Inner>,
}

struct Inner {
    /// Extra trust anchors (`upstream_ca`), beside the built-in web roots.
    roots: Vec<reqwest::Certificate>,
    /// The set's first client, for side requests.
    first: reqwest::Client,
    set: Mutex<Vec<Slot>>,
}

struct Slot {
    client: reqwest::Client,
    in_flight: Arc<AtomicUsize>,
}

/// One call's hold on a client: the client to send with, counted as busy
/// until this is dropped (with the response body, or with the failed call).
pub struct Lease {
    client: reqwest::Client,
    in_flight: Arc<AtomicUsize>,
}

impl Lease {
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Clients {
    /// A provider's client set, trusting the PEM certificates in `ca` (if
    /// any) as well as the built-in web roots. The first client is built now,
    /// so that a bad CA file stops the server at startup.
    pub fn new(ca: Option<&Path>) -> Result<Self, Error> {
        let roots = match ca {
            Some(path) => read_roots(path)?,
            None => Vec::new(),
        };
        // A certificate that parses as PEM but not as a certificate fails
        // here, in the client's TLS set-up: named as the CA file's fault.
        let first = build(&roots).map_err(|e| match ca {
            Some(path) => ca_invalid(path, e.message),
            None => e,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                roots,
                first: first.clone(),
                set: Mutex::new(vec![Slot {
                    client: first,
                    in_flight: Arc::new(AtomicUsize::new(0)),
                }]),
            }),
        })
    }

    /// A client for side requests that stream nothing (token fetches).
    pub fn any(&self) -> reqwest::Client {
        self.inner.first.clone()
    }

    /// The first client carrying fewer than [`STREAMS_PER_CLIENT`] calls,
    /// or a new one when all are full: calls gather on as few connections as
    /// the upstream's stream limit allows. The set never holds more than
    /// ⌈peak concurrent calls ÷ `STREAMS_PER_CLIENT`⌉ clients (at least one);
    /// a client left idle keeps no connection past the pool's idle timeout.
    pub async fn lease(&self) -> Result<Lease, Error> {
        let mut set = self.inner.set.lock().await;
        // Counts rise only under the lock, so none passes the limit.
        let slot = match set
            .iter()
            .position(|s| s.in_flight.load(Ordering::Relaxed) < STREAMS_PER_CLIENT)
        {
            Some(i) => &set[i],
            None => {
                set.push(Slot {
                    client: build(&self.inner.roots)?,
                    in_flight: Arc::new(AtomicUsize::new(0)),
                });
                &set[set.len() - 1]
            }
        };
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Lease {
            client: slot.client.clone(),
            in_flight: slot.in_flight.clone(),
        })
    }
}

/// Builds one pooled HTTP client with chatwire's upstream settings.
fn build(roots: &[reqwest::Certificate]) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // Never follow a redirect: the next hop would get the provider's key
        // (and, on 307/308, the body). A 3xx ends the call, naming it.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .user_agent(concat!("chatwire/", env!("CARGO_PKG_VERSION")))
        // A burst reaching a cold client shares one TLS connect per origin
        // (see connect_gate); reqwest keeps the connect timeout outermost.
        .connector_layer(ConnectGate::default());
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder
        .build()
        .map_err(|e| Error::internal(format!("building the HTTP client failed: {}", causes(&e))))
}

/// An error and its sources, as one line.
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out = format!("{out}: {s}");
        cur = s.source();
    }
    out
}

/// The PEM blocks of a CA file, or why not: unreadable, or no certificate in
/// it (whether each is a certificate is found when a client is built).
fn read_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, Error> {
    let pem = std::fs::read(path).map_err(|e| ca_invalid(path, e.to_string()))?;
    let roots =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_invalid(path, causes(&e)))?;
    if roots.is_empty() {
        return Err(ca_invalid(path, "no PEM certificate in it".into()));
    }
    Ok(roots)
}

/// The CA file at `path` cannot be used, and why.
fn ca_invalid(path: &Path, why: String) -> Error {
    Error::new(
        Kind::FailedPrecondition,
        "UPSTREAM_CA_INVALID",
        format!("upstream_ca {}: {why}", path.display()),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Calls in flight on each client of the set.
    async fn counts(clients: &Clients) -> Vec<usize> {
        let set = clients.inner.set.lock().await;
        set.iter()
            .map(|s| s.in_flight.load(Ordering::Relaxed))
            .collect()
    }

    #[tokio::test]
    async fn leases_fill_one_client_before_the_next_and_free_on_drop() {
        let clients = Clients::new(None).unwrap();
        let mut leases = Vec::new();
        for _ in 0..STREAMS_PER_CLIENT {
            leases.push(clients.lease().await.unwrap());
        }
        assert_eq!(counts(&clients).await, [STREAMS_PER_CLIENT]);
        leases.push(clients.lease().await.unwrap());
        assert_eq!(
            counts(&clients).await,
            [STREAMS_PER_CLIENT, 1],
            "the 101st call gets a client of its own"
        );
        // One call on the first client ends: the next call goes back to it.
        leases.swap_remove(0);
        let again = clients.lease().await.unwrap();
        assert_eq!(counts(&clients).await, [STREAMS_PER_CLIENT, 1]);
        drop(again);
        drop(leases);
        assert_eq!(counts(&clients).await, [0, 0]);
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = std::env::temp_dir().join(format!("chatwire-ca-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let Err(e) = Clients::new(Some(&missing)) else {
            panic!("a missing CA file is refused");
        };
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("a temp file");
        let Err(e) = Clients::new(Some(&empty)) else {
            panic!("a CA file without a certificate is refused");
        };
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        // A CERTIFICATE block whose base64 is sound but whose DER is no certificate.
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQoLDA0ODw==\n-----END CERTIFICATE-----\n",
        )
        .expect("a temp file");
        let Err(e) = Clients::new(Some(&garbage)) else {
            panic!("a CA file whose certificate does not parse is refused");
        };
        assert!(e.to_string().contains("garbage.pem"), "{e}");
        assert_eq!(e.reason, "UPSTREAM_CA_INVALID");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
