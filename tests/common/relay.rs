//! The fault proxy: a TCP relay between a client and the server that the tests can break.
//! - `cut`: close every connection (FIN); `reset`: abort every connection (RST).
//! - `set_accepting(false)`: new connections are accepted and closed at once.
//! - `set_blackhole(true)`: bytes stop flowing both ways but every socket stays open, like a
//!   pulled cable under TCP; what was sent meanwhile is delivered when the link returns, as
//!   TCP retransmission would.
//! - `set_shape`: delay each chunk, throttle to a byte rate, and slice writes into small
//!   pieces, in both directions.
//! - `client_bytes`: everything the clients sent so far, for checking what went out.
//! - `server_byte_count`: how many bytes the server sent so far, for measuring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How bytes travel while the link is up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Added before each chunk read is passed on.
    pub delay: Duration,
    /// At most this many bytes per second (`None`: no limit).
    pub bytes_per_sec: Option<u64>,
    /// Write in pieces of at most this many bytes (`None`: as read).
    pub slice: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Close,
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    blackhole: bool,
    shape: Shape,
    /// Bumped to kill the connections open at that moment.
    kills: u64,
    kill: Option<Kill>,
}

/// Bytes the clients sent, across all connections.
type Record = Arc<std::sync::Mutex<Vec<u8>>>;

pub struct Relay {
    pub port: u16,
    client_sent: Record,
    server_sent: Arc<AtomicU64>,
    accepting: Arc<AtomicBool>,
    link: watch::Sender<Link>,
    listener: tokio::task::AbortHandle,
}

/// Copy one direction, shaped, holding whatever was read while the link is blackholed.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    mut link: watch::Receiver<Link>,
    record: Option<Record>,
    count: Option<Arc<AtomicU64>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(r) = &record {
            r.lock().expect("record").extend_from_slice(&buf[..n]);
        }
        if let Some(c) = &count {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        let Ok(state) = link.wait_for(|l| !l.blackhole).await.map(|l| *l) else {
            return;
        };
        let shape = state.shape;
        if !shape.delay.is_zero() {
            tokio::time::sleep(shape.delay).await;
        }
        for piece in buf[..n].chunks(shape.slice.unwrap_or(n).max(1)) {
            if to.write_all(piece).await.is_err() || to.flush().await.is_err() {
                return;
            }
            if let Some(rate) = shape.bytes_per_sec {
                let micros = u64::try_from(piece.len()).unwrap_or(u64::MAX) * 1_000_000;
                tokio::time::sleep(Duration::from_micros(micros / rate.max(1))).await;
            }
        }
    }
    // EOF also waits for the link, then travels on.
    let _ = link.wait_for(|l| !l.blackhole).await;
    let _ = to.shutdown().await;
}

async fn relay_one(
    down: TcpStream,
    upstream: u16,
    mut link: watch::Receiver<Link>,
    record: Record,
    count: Arc<AtomicU64>,
) {
    let born = link.borrow_and_update().kills;
    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (mut down_r, mut down_w) = down.into_split();
    let (mut up_r, mut up_w) = up.into_split();
    let killed = {
        let mut watcher = link.clone();
        async move {
            match watcher.wait_for(|l| l.kills != born).await {
                Ok(l) => l.kill,
                Err(_) => None,
            }
        }
    };
    let kill = tokio::select! {
        _ = async {
            tokio::join!(
                pump(&mut down_r, &mut up_w, link.clone(), Some(record), None),
                pump(&mut up_r, &mut down_w, link.clone(), None, Some(count))
            )
        } => None,
        k = killed => k,
    };
    if kill == Some(Kill::Reset)
        && let (Ok(down), Ok(up)) = (down_r.reunite(down_w), up_r.reunite(up_w))
    {
        // Zero linger: closing sends RST instead of FIN.
        let _ = down.set_zero_linger();
        let _ = up.set_zero_linger();
    }
}

impl Relay {
    /// Listen on a free loopback port and relay to 127.0.0.1:`upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let accepting = Arc::new(AtomicBool::new(true));
        let (link, _) = watch::channel(Link {
            blackhole: false,
            shape: Shape::default(),
            kills: 0,
            kill: None,
        });
        let client_sent = Record::default();
        let server_sent = Arc::new(AtomicU64::new(0));
        let (acc, l, rec, count) = (
            accepting.clone(),
            link.clone(),
            client_sent.clone(),
            server_sent.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if acc.load(Ordering::SeqCst) {
                    tokio::spawn(relay_one(
                        down,
                        upstream,
                        l.subscribe(),
                        rec.clone(),
                        count.clone(),
                    ));
                }
            }
        });
        Self {
            port,
            client_sent,
            server_sent,
            accepting,
            link,
            listener: task.abort_handle(),
        }
    }

    fn kill(&self, how: Kill) {
        self.link.send_modify(|l| {
            l.kills += 1;
            l.kill = Some(how);
        });
    }

    /// Close every relayed connection now (both sides see the socket close).
    pub async fn cut(&self) {
        self.kill(Kill::Close);
        tokio::task::yield_now().await;
    }

    /// Abort every relayed connection now: both sides get a TCP reset.
    pub async fn reset(&self) {
        self.kill(Kill::Reset);
        tokio::task::yield_now().await;
    }

    /// While false, new connections are accepted and closed at once.
    pub fn set_accepting(&self, on: bool) {
        self.accepting.store(on, Ordering::SeqCst);
    }

    /// While true, nothing flows on any connection, old or new; nothing is closed either.
    pub fn set_blackhole(&self, on: bool) {
        self.link.send_modify(|l| l.blackhole = on);
    }

    /// Everything the clients sent so far, over all connections.
    pub fn client_bytes(&self) -> Vec<u8> {
        self.client_sent.lock().expect("record").clone()
    }

    /// Bytes the server sent to the clients so far, over all connections.
    pub fn server_byte_count(&self) -> u64 {
        self.server_sent.load(Ordering::Relaxed)
    }

    /// Shape the traffic of every connection from now on.
    pub fn set_shape(&self, shape: Shape) {
        self.link.send_modify(|l| l.shape = shape);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.listener.abort();
    }
}
