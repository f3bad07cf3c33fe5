//! A TCP relay between a client and the server that the tests can break: cut every
//! connection at once, refuse new ones for a while, or blackhole the link (bytes stop flowing
//! both ways but every socket stays open, like a pulled cable under TCP; what was sent while
//! it lasted is delivered when the link returns, as TCP retransmission would).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, watch};
use tokio::task::AbortHandle;

pub struct Relay {
    pub port: u16,
    accepting: Arc<AtomicBool>,
    blackhole: watch::Sender<bool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    listener: AbortHandle,
}

/// Copy one direction, holding whatever was read while the link is blackholed.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut blackhole: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if blackhole.wait_for(|on| !*on).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    // EOF also waits for the link, then travels on.
    let _ = blackhole.wait_for(|on| !*on).await;
    let _ = to.shutdown().await;
}

impl Relay {
    /// Listen on a free loopback port and relay to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let accepting = Arc::new(AtomicBool::new(true));
        let (blackhole, _) = watch::channel(false);
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (acc, cs, bh) = (accepting.clone(), conns.clone(), blackhole.clone());
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if !acc.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let bh = bh.subscribe();
                let handle = tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = down.set_nodelay(true);
                    let _ = up.set_nodelay(true);
                    let (down_r, down_w) = down.into_split();
                    let (up_r, up_w) = up.into_split();
                    tokio::join!(pump(down_r, up_w, bh.clone()), pump(up_r, down_w, bh));
                });
                cs.lock().await.push(handle.abort_handle());
            }
        });
        Self {
            port,
            accepting,
            blackhole,
            conns,
            listener: task.abort_handle(),
        }
    }

    /// Close every relayed connection now (both sides see the socket close).
    pub async fn cut(&self) {
        for c in self.conns.lock().await.drain(..) {
            c.abort();
        }
    }

    /// While false, new connections are accepted and closed at once.
    pub fn set_accepting(&self, on: bool) {
        self.accepting.store(on, Ordering::SeqCst);
    }

    /// While true, nothing flows on any connection, old or new; nothing is closed either.
    pub fn set_blackhole(&self, on: bool) {
        self.blackhole.send_replace(on);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.listener.abort();
    }
}
