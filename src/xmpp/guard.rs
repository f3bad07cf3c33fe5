//! Bounds on what a peer can make the XML parser do, checked on the raw bytes before the
//! parser sees them.
//!
//! tokio-xmpp's parser has no depth limit: a stanza nested ~5,000 elements deep overflows the
//! stack of a worker thread and aborts the whole process, and anyone who can send us a stanza
//! can send one. [`Guarded`] sits under the parser (around the TCP or TLS stream) and scans
//! what is read: element depth (the `<stream:stream>` roots do not count) and the size of one
//! top-level stanza. Past either limit the read fails, which ends the connection like any
//! other I/O error; the reconnect logic takes it from there.
//!
//! The scanner knows just enough XML for that: tags, quoted attribute values (which may hold
//! `>` and `/`), end tags, self-closing tags and the `<?xml?>` declaration. XMPP forbids
//! comments, CDATA and DTDs, so `<!` is refused outright.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Deepest element nesting accepted inside a stanza (the stanza itself is level 1).
pub const MAX_DEPTH: usize = 64;
/// Largest top-level stanza accepted, in bytes.
pub const MAX_STANZA_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// Just read `<`.
    Lt,
    /// In a start tag's name (`name_len` bytes so far).
    OpenName,
    /// In a start tag after its name; `quote` is the open quote, if any.
    OpenAttrs,
    /// In an end tag.
    CloseName,
    /// In `<?…?>`; `true` after a `?`.
    Pi(bool),
}

/// The byte scanner, separate from the I/O so it can be tested directly.
#[derive(Debug, Clone)]
pub struct Scanner {
    state: State,
    quote: Option<u8>,
    /// The previous significant byte in a start tag was `/` (so `>` closes an empty element).
    slash: bool,
    name: [u8; 16],
    name_len: usize,
    depth: usize,
    stanza_bytes: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            state: State::Text,
            quote: None,
            slash: false,
            name: [0; 16],
            name_len: 0,
            depth: 0,
            stanza_bytes: 0,
        }
    }
}

fn is_name_end(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b'/' || b == b'>'
}

impl Scanner {
    fn name_is_stream(&self) -> bool {
        let name = &self.name[..self.name_len.min(self.name.len())];
        // `stream:stream`, or any prefix with local name `stream` (only roots use it).
        self.name_len <= self.name.len()
            && (name == b"stream:stream" || name == b"stream" || name.ends_with(b":stream"))
    }

    fn push_name(&mut self, b: u8) {
        if self.name_len < self.name.len() {
            self.name[self.name_len] = b;
        }
        self.name_len += 1;
    }

    /// Element depth inside the current stanza (0 between stanzas).
    pub fn depth(&self) -> usize {
        self.depth
    }

    fn open(&mut self) -> io::Result<()> {
        if self.name_is_stream() {
            return Ok(());
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the peer sent XML nested deeper than {MAX_DEPTH} levels; closing the connection"
                ),
            ));
        }
        Ok(())
    }

    fn close(&mut self) {
        if !self.name_is_stream() {
            self.depth = self.depth.saturating_sub(1);
        }
    }

    /// Scan bytes as they are read.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &b in bytes {
            if self.depth > 0 || self.state != State::Text {
                self.stanza_bytes += 1;
                if self.stanza_bytes > MAX_STANZA_BYTES {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the peer sent a stanza over {MAX_STANZA_BYTES} bytes; closing the connection"
                        ),
                    ));
                }
            }
            self.state = match self.state {
                State::Text => {
                    if b == b'<' {
                        State::Lt
                    } else {
                        State::Text
                    }
                }
                State::Lt => match b {
                    b'/' => {
                        self.name_len = 0;
                        State::CloseName
                    }
                    b'?' => State::Pi(false),
                    b'!' => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the peer sent a comment, CDATA or DTD, which XMPP forbids",
                        ));
                    }
                    _ => {
                        self.name_len = 0;
                        self.slash = false;
                        self.push_name(b);
                        State::OpenName
                    }
                },
                State::OpenName => {
                    if is_name_end(b) {
                        self.state = State::OpenAttrs;
                        self.quote = None;
                        // Re-read this byte as part of the attributes.
                        self.attrs_byte(b)?
                    } else {
                        self.push_name(b);
                        State::OpenName
                    }
                }
                State::OpenAttrs => self.attrs_byte(b)?,
                State::CloseName => {
                    if b == b'>' {
                        self.close();
                        State::Text
                    } else {
                        if !b.is_ascii_whitespace() {
                            self.push_name(b);
                        }
                        State::CloseName
                    }
                }
                State::Pi(after_q) => match b {
                    b'>' if after_q => State::Text,
                    b'?' => State::Pi(true),
                    _ => State::Pi(false),
                },
            };
            if self.depth == 0 && self.state == State::Text {
                self.stanza_bytes = 0;
            }
        }
        Ok(())
    }

    fn attrs_byte(&mut self, b: u8) -> io::Result<State> {
        if let Some(q) = self.quote {
            if b == q {
                self.quote = None;
            }
            return Ok(State::OpenAttrs);
        }
        match b {
            b'"' | b'\'' => {
                self.quote = Some(b);
                self.slash = false;
                Ok(State::OpenAttrs)
            }
            b'/' => {
                self.slash = true;
                Ok(State::OpenAttrs)
            }
            b'>' => {
                if !self.slash {
                    self.open()?;
                }
                Ok(State::Text)
            }
            b if b.is_ascii_whitespace() => Ok(State::OpenAttrs),
            _ => {
                self.slash = false;
                Ok(State::OpenAttrs)
            }
        }
    }
}

/// A stream whose reads are checked by a [`Scanner`].
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    scanner: Scanner,
    failed: Option<io::ErrorKind>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            scanner: Scanner::default(),
            failed: None,
        }
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(io::Error::new(
                kind,
                "connection closed after a limit was exceeded",
            )));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if let Err(e) = this.scanner.feed(new) {
                    tracing::warn!(error = %e, "refusing what the peer sent");
                    // Hand the parser nothing of it.
                    buf.set_filled(before);
                    this.failed = Some(e.kind());
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>";

    fn scan(s: &str) -> io::Result<Scanner> {
        let mut sc = Scanner::default();
        sc.feed(s.as_bytes())?;
        Ok(sc)
    }

    #[test]
    fn ordinary_traffic_passes_and_depth_returns_to_zero() {
        let s = format!(
            "{HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>\
             <message from='a' to=\"b\"><body a='x>y/z' b=\"/>\">1 &lt; 2 / 3 &gt; 0</body><x/></message>\
             {HEADER}<iq type='result' id='1'/>"
        );
        let sc = scan(&s).expect("fine");
        assert_eq!(sc.depth(), 0, "streams (even restarted) do not count");
    }

    #[test]
    fn depth_is_tracked_across_reads() {
        let mut sc = Scanner::default();
        for chunk in [HEADER, "<mess", "age><a><b", "/></a", "><c x='>'", ">"] {
            sc.feed(chunk.as_bytes()).expect("fine");
        }
        assert_eq!(sc.depth(), 2, "message and c are open");
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser() {
        let ok = format!("{HEADER}<message>{}", "<a>".repeat(MAX_DEPTH - 1));
        assert!(scan(&ok).is_ok());
        for n in [MAX_DEPTH, 1_000, 100_000] {
            let bomb = format!("{HEADER}<message>{}", "<a>".repeat(n));
            let err = scan(&bomb).expect_err("too deep");
            assert!(err.to_string().contains("nested deeper"), "{err}");
        }
    }

    #[test]
    fn comments_and_cdata_are_refused() {
        assert!(scan(&format!("{HEADER}<message><!-- x --></message>")).is_err());
        assert!(scan(&format!("{HEADER}<message><![CDATA[x]]></message>")).is_err());
    }

    #[test]
    fn oversized_stanzas_are_refused_but_many_small_ones_are_not() {
        let big = format!("{HEADER}<message><body>{}", "x".repeat(MAX_STANZA_BYTES));
        assert!(
            scan(&big)
                .expect_err("too big")
                .to_string()
                .contains("bytes")
        );
        let mut sc = Scanner::default();
        sc.feed(HEADER.as_bytes()).expect("header");
        let small = format!("<message><body>{}</body></message>", "x".repeat(1024));
        for _ in 0..(2 * MAX_STANZA_BYTES / 1024) {
            sc.feed(small.as_bytes()).expect("each stanza is small");
        }
    }
}
