//! A TCP relay between a client and the server that the tests can break: cut every
//! connection at once, and refuse new ones for a while.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::AbortHandle;

pub struct Relay {
    pub port: u16,
    accepting: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    listener: AbortHandle,
}

impl Relay {
    /// Listen on a free loopback port and relay to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let accepting = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (acc, cs) = (accepting.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !acc.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let handle = tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
                cs.lock().await.push(handle.abort_handle());
            }
        });
        Self {
            port,
            accepting,
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
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.listener.abort();
    }
}
