//! The standalone server: accepts connections on a listener it is given and serves [`app`] until
//! the shutdown future resolves, then drains in-flight requests.
//!
//! Its own accept loop (hyper-util) rather than `axum::serve`, for the limits a public auth
//! endpoint needs: request-head size, header read timeout (slowloris), a connection cap.

use crate::http::{AppState, ClientAddr, app};
use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves [`app`] (over TLS when `tls` is given) until `shutdown` resolves. Returns after
/// in-flight connections drained (or [`DRAIN_TIMEOUT`] passed).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    serve(listener, app(state.clone()), state, tls, shutdown).await;
}

/// Serves `router` (the main app or the admin app) with the server limits from `state`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let server = state.settings.server.clone();
    let service = router.into_service::<hyper::body::Incoming>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(server.header_read_timeout_ms))
        .max_buf_size(server.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(server.max_header_bytes as u32)
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let connections = Arc::new(Semaphore::new(server.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // Waiting for a permit before accepting leaves excess connections in the OS backlog.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = tower::ServiceExt::map_request(service.clone(), move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ClientAddr(peer));
            req
        });
        let svc = TowerToHyperService::new(svc);
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let handshake_timeout = Duration::from_millis(server.header_read_timeout_ms);
        tokio::spawn(async move {
            match tls {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(acceptor) => {
                    // The handshake counts against the header deadline: a silent client is dropped.
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                    {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout; closing remaining connections");
    }
}

/// Builds the server from `settings`, binds the main (and admin) listener, serves until
/// `shutdown`, then drains and stops background tasks.
pub async fn start(
    settings: crate::config::Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let listen = settings.server.listen;
    let tls_settings = settings.tls.clone();
    let admin_addr = settings.admin.listen.clone();
    let mut built = crate::wiring::build(settings)?;
    let tls = if tls_settings.enabled() {
        let certs = crate::tls::Reloading::open(
            Path::new(&tls_settings.cert_file),
            Path::new(&tls_settings.key_file),
        )?;
        built.tasks.push(
            certs
                .clone()
                .watch(Duration::from_millis(tls_settings.reload_interval_ms)),
        );
        Some(certs.acceptor()?)
    } else {
        None
    };
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %listener.local_addr()?, scheme, "listening");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let admin = if admin_addr.is_empty() {
        None
    } else {
        let admin = TcpListener::bind(&admin_addr)
            .await
            .with_context(|| format!("cannot listen on {admin_addr} (admin.listen)"))?;
        tracing::info!(address = %admin.local_addr()?, scheme, "admin listening");
        let (router, state, tls, mut stopped) = (
            crate::http::admin_app(built.state.clone()),
            built.state.clone(),
            tls.clone(),
            stopped.clone(),
        );
        Some(tokio::spawn(async move {
            serve(admin, router, state, tls, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        }))
    };
    run(listener, built.state, tls, shutdown).await;
    let _ = stop.send(true);
    if let Some(task) = admin {
        let _ = task.await;
    }
    built.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
