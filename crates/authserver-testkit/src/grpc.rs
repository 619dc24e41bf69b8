//! Envoy's ext_authz over gRPC, from the client side: the real listener loop
//! ([`authserver::server::serve`] on `127.0.0.1:0`) around the gRPC router, a tonic client built
//! from the same protos (`envoy-types`), and `CheckRequest`s as Envoy sends them.

use authserver::http::AppState;
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use std::net::SocketAddr;
use std::sync::Arc;
use tonic::transport::Channel;

pub use tonic::Code;

/// The gRPC listener serving `state`, and the switch that shuts it down.
pub struct Listener {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Starts the gRPC router on `127.0.0.1:0` through the server's own accept loop.
    pub async fn start(state: Arc<AppState>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = authserver::http::grpc::app(state.clone());
        let task = tokio::spawn(authserver::server::serve(listener, router, state, None, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// A client over a fresh HTTP/2 connection.
    pub async fn client(&self) -> AuthorizationClient<Channel> {
        client_at(self.addr).await
    }

    /// Shuts the listener down and waits until it drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap();
    }
}

/// A `CheckRequest` as Envoy sends it: the client's headers (lower-case, with the pseudo-headers
/// Envoy adds) and, when given, the downstream client's address.
pub fn check_request(headers: &[(&str, &str)], source: Option<&str>) -> CheckRequest {
    let mut all: std::collections::HashMap<String, String> = [
        (":authority", "app.example"),
        (":method", "GET"),
        (":path", "/private"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    all.extend(headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let source = source.map(|ip| Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.to_owned(),
                ..Default::default()
            })),
        }),
        ..Default::default()
    });
    CheckRequest {
        attributes: Some(AttributeContext {
            source,
            request: Some(Request {
                http: Some(HttpRequest {
                    headers: all,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// What a test reads from a `CheckResponse`: the rpc code, the HTTP status Envoy would answer
/// (200 for OK), the headers with their append action, and the denial body.
#[derive(Debug)]
pub struct Answer {
    /// `status.code`.
    pub code: Code,
    /// The denial's HTTP status; 200 when allowed.
    pub http_status: i32,
    /// `(name, value, append_action)` as sent.
    pub headers: Vec<(String, String, i32)>,
    /// The denial's body (empty when allowed).
    pub body: String,
}

impl Answer {
    /// The value of header `name`, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.0 == name).map(|h| h.1.as_str())
    }
}

/// Reads a `CheckResponse` into an [`Answer`].
pub fn answer(response: CheckResponse) -> Answer {
    let code = Code::from_i32(response.status.map_or(-1, |s| s.code));
    let headers = |h: Vec<envoy_types::ext_authz::v3::pb::HeaderValueOption>| {
        h.into_iter()
            .map(|o| {
                let v = o.header.unwrap();
                (v.key, v.value, o.append_action)
            })
            .collect()
    };
    match response.http_response {
        Some(HttpResponse::OkResponse(ok)) => Answer {
            code,
            http_status: 200,
            headers: headers(ok.headers),
            body: String::new(),
        },
        Some(HttpResponse::DeniedResponse(d)) => Answer {
            code,
            http_status: d.status.map_or(0, |s| s.code),
            headers: headers(d.headers),
            body: d.body,
        },
        other => panic!("no http_response: {other:?}"),
    }
}

/// The gRPC listener's address from a [`crate::process::Server`] started with
/// `AUTHSERVER_SERVER_GRPC_LISTEN=127.0.0.1:0` (its "ext_authz gRPC listening" line comes before
/// the "listening" line `start` waits for).
pub fn process_addr(server: &crate::process::Server) -> SocketAddr {
    server
        .lines()
        .iter()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "ext_authz gRPC listening").then(|| v["address"].as_str()?.parse().ok())?
        })
        .expect("the server logged its gRPC listener")
}

/// A client of the gRPC listener at `addr`.
pub async fn client_at(addr: SocketAddr) -> AuthorizationClient<Channel> {
    AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// A client of the gRPC listener at `addr` over TLS, trusting only `ca_pem` (for `localhost`).
pub async fn tls_client_at(addr: SocketAddr, ca_pem: &str) -> AuthorizationClient<Channel> {
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    AuthorizationClient::new(channel)
}

/// Whether a plaintext (h2c) `Check` gets any answer from `addr` (it must not from a TLS port).
pub async fn plaintext_answers(addr: SocketAddr) -> bool {
    let Ok(mut client) = AuthorizationClient::connect(format!("http://{addr}")).await else {
        return false;
    };
    client.check(check_request(&[], None)).await.is_ok()
}
