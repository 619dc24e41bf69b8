//! A TCP relay in front of moto that can hold DynamoDB's answers back: a table that accepts
//! connections and never answers (an outage the SDK sees only through its timeouts), or one
//! username's reads held (a throttled hot key). Used by the users-table attack and outage tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay to moto. While `hold` is set, the answers (upstream -> client) of every
/// connection are held back (`Hold::All`), or only those of connections whose request carried
/// a given byte string (`Hold::Matching`), until it is cleared.
pub struct Relay {
    /// The relay's URL (`http://127.0.0.1:PORT`), for `store.endpoint_url`.
    pub url: String,
    hold: Arc<Mutex<Hold>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the relay holds back.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// Nothing: a plain relay.
    Nothing,
    /// Every answer: a table that accepts connections and never answers.
    All,
    /// The answers on connections whose request carried these bytes (one key's reads).
    Matching(Vec<u8>),
}

impl Relay {
    /// A relay on a free loopback port to `upstream` (moto's URL), holding nothing.
    pub async fn start(upstream: &str) -> Self {
        let target = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hold = Arc::new(Mutex::new(Hold::Nothing));
        let h = hold.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (h, target) = (h.clone(), target.clone());
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = up.into_split();
                    let matched = Arc::new(AtomicBool::new(false));
                    let (m, hh) = (matched.clone(), h.clone());
                    let to_up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(k) = cr.read(&mut buf).await {
                            if k == 0 {
                                break;
                            }
                            if let Hold::Matching(p) = &*hh.lock().unwrap()
                                && buf[..k].windows(p.len()).any(|w| w == p.as_slice())
                            {
                                m.store(true, Ordering::SeqCst);
                            }
                            if uw.write_all(&buf[..k]).await.is_err() {
                                break;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(k) = ur.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                        loop {
                            let held = match &*h.lock().unwrap() {
                                Hold::Nothing => false,
                                Hold::All => true,
                                Hold::Matching(_) => matched.load(Ordering::SeqCst),
                            };
                            if !held {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        if cw.write_all(&buf[..k]).await.is_err() {
                            break;
                        }
                    }
                    to_up.abort();
                });
            }
        });
        Self { url, hold, task }
    }

    /// Holds `what` from now on (answers already held are released by [`Hold::Nothing`]).
    pub fn hold(&self, what: Hold) {
        *self.hold.lock().unwrap() = what;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
