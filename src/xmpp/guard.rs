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
//!
//! Two more jobs, because tokio-xmpp gives no hook for them:
//! - The XML parser (rxml) refuses an attribute value over 8 KiB, and the whole connection
//!   goes with it. Any publisher could put such a value in an item and break every
//!   subscriber's link, over and over as the server re-sends it. So attribute values are cut
//!   here to [`MAX_ATTR_BYTES`] (at a character boundary, never inside an entity); the rest of
//!   the stanza arrives whole.
//! - tokio-xmpp treats a stream error from the server like any lost connection and reconnects.
//!   A `<conflict/>` (another login took our resource) must not be retried like that, so a
//!   top-level `<stream:error>` is copied to a [`StreamErrors`] slot the connector reads.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Deepest element nesting accepted inside a stanza (the stanza itself is level 1).
pub const MAX_DEPTH: usize = 64;
/// Largest top-level stanza accepted, in bytes.
pub const MAX_STANZA_BYTES: usize = 8 * 1024 * 1024;
/// Longest attribute value passed on (raw bytes; the parser's limit is 8,192 decoded).
pub const MAX_ATTR_BYTES: usize = 8000;
/// Most bytes of a stream error kept.
const MAX_STREAM_ERROR_BYTES: usize = 4096;

/// The peer does not speak XMPP (it sent something that is not XML at all, or an HTML page).
#[derive(Debug)]
pub struct NotXmpp(String);

impl std::fmt::Display for NotXmpp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this is not an XMPP server (wrong host or port?): it answered {:?}",
            self.0
        )
    }
}

impl std::error::Error for NotXmpp {}

impl NotXmpp {
    /// Is this I/O error ours, saying the peer is not XMPP?
    pub fn is(e: &io::Error) -> bool {
        matches!(e.get_ref(), Some(inner) if inner.is::<Self>())
    }

    fn error(first_bytes: &[u8]) -> io::Error {
        let text: String = String::from_utf8_lossy(first_bytes)
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        io::Error::new(
            io::ErrorKind::InvalidData,
            Self(crate::sanitize::display_max(text.trim(), 40)),
        )
    }
}

/// A stream error the server sent, read into plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamErrorInfo {
    /// The defined condition (`conflict`, `system-shutdown`, …).
    pub condition: String,
    /// The server's text, if any (sanitised).
    pub text: Option<String>,
}

impl StreamErrorInfo {
    /// Read a captured `<stream:error>…</stream:error>`.
    fn parse(raw: &[u8]) -> Option<Self> {
        use xmpp_parsers::minidom::Element;
        const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
        let body = std::str::from_utf8(raw).ok()?;
        let doc = format!(
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>{body}</stream:stream>"
        );
        let root: Element = doc.parse().ok()?;
        let error = root.children().next()?;
        let condition = error
            .children()
            .find(|c| c.ns() == NS_STREAMS && c.name() != "text")?
            .name()
            .to_owned();
        let text = error
            .get_child("text", NS_STREAMS)
            .map(|t| crate::sanitize::display_max(t.text().trim(), 200))
            .filter(|t| !t.is_empty());
        Some(Self {
            condition: crate::sanitize::display_max(&condition, 64),
            text,
        })
    }
}

/// Where the guard of a connection leaves the last stream error it saw.
#[derive(Debug, Default)]
pub struct StreamErrors(Mutex<Option<StreamErrorInfo>>);

impl StreamErrors {
    pub fn take(&self) -> Option<StreamErrorInfo> {
        self.0.lock().ok().and_then(|mut e| e.take())
    }

    fn put(&self, e: StreamErrorInfo) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(e);
        }
    }
}

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
    /// Bytes of the current attribute value passed on so far.
    attr_len: usize,
    /// Inside `&…;` in an attribute value (never cut there).
    entity: bool,
    /// Dropping the rest of an attribute value that is too long.
    cutting: bool,
    /// Attribute values cut so far.
    cut: u64,
    /// Bytes of the top-level element being read, while it may be a stream error.
    capture: Option<Vec<u8>>,
    /// The first bytes the peer sent, until the stream's root element opened.
    first: Option<Vec<u8>>,
    /// A stream error read whole.
    stream_error: Option<StreamErrorInfo>,
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
            attr_len: 0,
            entity: false,
            cutting: false,
            cut: 0,
            capture: None,
            stream_error: None,
            first: Some(Vec::new()),
        }
    }
}

fn is_name_end(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b'/' || b == b'>'
}

impl Scanner {
    fn name_is_stream_error(&self) -> bool {
        let name = &self.name[..self.name_len.min(self.name.len())];
        self.name_len <= self.name.len() && (name == b"error" || name.ends_with(b":error"))
    }

    /// Attribute values cut so far (see [`MAX_ATTR_BYTES`]).
    pub fn cut_values(&self) -> u64 {
        self.cut
    }

    /// The stream error read last, if any (taken).
    pub fn take_stream_error(&mut self) -> Option<StreamErrorInfo> {
        self.stream_error.take()
    }

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
            self.first = None;
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

    /// Scan bytes as they are read (tests; see [`Scanner::filter`]).
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut copy = bytes.to_vec();
        self.filter(&mut copy).map(|_| ())
    }

    /// Scan bytes as they are read, dropping what is cut (the end of over-long attribute
    /// values) in place. Returns how many bytes are left at the start of `buf`.
    pub fn filter(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(first) = &mut self.first {
            let room = 64usize.saturating_sub(first.len());
            first.extend_from_slice(&buf[..room.min(buf.len())]);
            if first
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|&c| c != b'<')
            {
                return Err(NotXmpp::error(first));
            }
        }
        let mut kept = 0;
        for i in 0..buf.len() {
            let b = buf[i];
            if self.scan_byte(b)? {
                buf[kept] = b;
                kept += 1;
            }
        }
        Ok(kept)
    }

    /// One byte: is it passed on?
    fn scan_byte(&mut self, b: u8) -> io::Result<bool> {
        // Before the stream opens, only the XML declaration and whitespace may come.
        if let Some(first) = &self.first
            && b == b'!'
            && self.state == State::Lt
        {
            return Err(NotXmpp::error(first));
        }
        if self.depth == 0 && self.state == State::Text && b == b'<' {
            // Perhaps a stream error: keep its bytes until its name says.
            self.capture = Some(Vec::new());
        }
        let keep = self.step(b)?;
        if keep && let Some(c) = &mut self.capture {
            c.push(b);
            if c.len() > MAX_STREAM_ERROR_BYTES {
                self.capture = None;
            }
        }
        if self.capture.is_some() && self.depth == 0 && self.state == State::Text {
            // The top-level element is complete.
            if let Some(raw) = self.capture.take()
                && let Some(info) = StreamErrorInfo::parse(&raw)
            {
                self.stream_error = Some(info);
            }
        }
        Ok(keep)
    }

    fn step(&mut self, b: u8) -> io::Result<bool> {
        let mut keep = true;
        {
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
                        if self.depth == 0 && !self.name_is_stream_error() {
                            self.capture = None;
                        }
                        // Re-read this byte as part of the attributes.
                        self.attrs_byte(b, &mut keep)?
                    } else {
                        self.push_name(b);
                        State::OpenName
                    }
                }
                State::OpenAttrs => self.attrs_byte(b, &mut keep)?,
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
        Ok(keep)
    }

    fn attrs_byte(&mut self, b: u8, keep: &mut bool) -> io::Result<State> {
        if let Some(q) = self.quote {
            if b == q {
                self.quote = None;
                self.cutting = false;
            } else if self.cutting {
                *keep = false;
            } else if self.attr_len >= MAX_ATTR_BYTES && !self.entity && (b & 0xC0) != 0x80 {
                // Cut here: a character starts, and no entity is open.
                self.cutting = true;
                self.cut += 1;
                *keep = false;
            } else {
                self.attr_len += 1;
                match b {
                    b'&' => self.entity = true,
                    b';' => self.entity = false,
                    _ => {}
                }
            }
            return Ok(State::OpenAttrs);
        }
        match b {
            b'"' | b'\'' => {
                self.quote = Some(b);
                self.slash = false;
                self.attr_len = 0;
                self.entity = false;
                self.cutting = false;
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
    errors: Option<Arc<StreamErrors>>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            scanner: Scanner::default(),
            failed: None,
            errors: None,
        }
    }

    /// Also leave each stream error the server sends in `errors`.
    #[must_use]
    pub fn reporting(mut self, errors: Option<Arc<StreamErrors>>) -> Self {
        self.errors = errors;
        self
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
                let read = buf.filled().len() - before;
                let cut_before = this.scanner.cut_values();
                let result = this.scanner.filter(&mut buf.filled_mut()[before..]);
                if this.scanner.cut_values() > cut_before {
                    tracing::info!(
                        "cut an attribute value to {MAX_ATTR_BYTES} bytes (the parser's limit)"
                    );
                }
                if let Some(e) = this.scanner.take_stream_error() {
                    tracing::info!(condition = %e.condition, text = ?e.text, "the server sent a stream error");
                    if let Some(errors) = &this.errors {
                        errors.put(e);
                    }
                }
                match result {
                    Ok(kept) => {
                        buf.set_filled(before + kept);
                        if kept == 0 && read > 0 {
                            // Everything read was cut: read again rather than report EOF.
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        Poll::Ready(Ok(()))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "refusing what the peer sent");
                        // Hand the parser nothing of it.
                        buf.set_filled(before);
                        this.failed = Some(e.kind());
                        Poll::Ready(Err(e))
                    }
                }
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
    fn a_peer_that_is_not_xmpp_is_named_as_such() {
        for (answer, says) in [
            (
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n",
                "HTTP/1.1 400 Bad Request",
            ),
            ("SSH-2.0-OpenSSH_9.2p1 Debian\r\n", "SSH-2.0-OpenSSH_9.2p1"),
            ("<!DOCTYPE html><html>", "<!DOCTYPE html>"),
        ] {
            let err = scan(answer).expect_err(answer);
            assert!(NotXmpp::is(&err), "{err}");
            assert!(err.to_string().contains("not an XMPP server"), "{err}");
            assert!(err.to_string().contains(says), "{err}");
        }
        // Control: an XMPP server's first bytes pass, and later markup is the usual error.
        assert!(scan(HEADER).is_ok());
        let err = scan(&format!("{HEADER}<message><!-- x --></message>")).expect_err("comment");
        assert!(!NotXmpp::is(&err));
    }

    #[test]
    fn comments_and_cdata_are_refused() {
        assert!(scan(&format!("{HEADER}<message><!-- x --></message>")).is_err());
        assert!(scan(&format!("{HEADER}<message><![CDATA[x]]></message>")).is_err());
    }

    fn filtered(s: &str) -> (String, Scanner) {
        let mut sc = Scanner::default();
        let mut buf = s.as_bytes().to_vec();
        let kept = sc.filter(&mut buf).expect("accepted");
        buf.truncate(kept);
        (String::from_utf8(buf).expect("still UTF-8"), sc)
    }

    #[test]
    fn long_attribute_values_are_cut_and_the_rest_passes() {
        let long = "日".repeat(3000); // 9,000 bytes
        let s = format!(
            "{HEADER}<message><item a='{long}' b='short'><p>{}</p></item></message>",
            "x".repeat(20_000)
        );
        let (out, sc) = filtered(&s);
        assert_eq!(sc.cut_values(), 1);
        let start = out.find("a='").expect("attr") + 3;
        let value = &out[start..out[start..].find('\'').expect("end") + start];
        assert!(
            (MAX_ATTR_BYTES..MAX_ATTR_BYTES + 4).contains(&value.len()),
            "{}",
            value.len()
        );
        assert!(
            value.chars().all(|c| c == '日'),
            "cut at a character boundary"
        );
        assert!(out.contains("b='short'"), "the next attribute is intact");
        assert!(out.contains(&"x".repeat(20_000)), "text is never cut");
        assert_eq!(sc.depth(), 0);
        // Never inside an entity: the cut comes after the whole reference.
        let s = format!(
            "{HEADER}<m a='{}&amp;&amp;&amp;'/>",
            "y".repeat(MAX_ATTR_BYTES - 2)
        );
        let (out, _) = filtered(&s);
        assert!(
            out.ends_with(&format!("{}&amp;'/>", "y".repeat(MAX_ATTR_BYTES - 2))),
            "{}",
            &out[out.len() - 20..]
        );
        // Control: a value at the limit is untouched.
        let s = format!("{HEADER}<m a='{}'/>", "z".repeat(MAX_ATTR_BYTES));
        let (out, sc) = filtered(&s);
        assert_eq!(out, s);
        assert_eq!(sc.cut_values(), 0);
    }

    #[test]
    fn a_stream_error_is_read_out() {
        let s = format!(
            "{HEADER}<message><error/></message><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text></stream:error></stream:stream>"
        );
        let (_, mut sc) = filtered(&s);
        assert_eq!(
            sc.take_stream_error(),
            Some(StreamErrorInfo {
                condition: "conflict".into(),
                text: Some("Replaced by new connection".into())
            })
        );
        // Control: ordinary traffic (an <error/> inside a stanza too) is no stream error.
        let (_, mut sc) = filtered(&format!(
            "{HEADER}<iq type='error'><error type='cancel'><x/></error></iq>"
        ));
        assert_eq!(sc.take_stream_error(), None);
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
