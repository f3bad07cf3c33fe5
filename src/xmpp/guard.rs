//! Bounds on what a peer can make the XML parser do, checked on the raw bytes before the
//! parser sees them.
//!
//! tokio-xmpp's parser has no depth limit: a stanza nested ~5,000 elements deep overflows the
//! stack of a worker thread and aborts the whole process, and anyone who can send us a stanza
//! can send one. [`Guarded`] sits under the parser (around the TCP or TLS stream) and scans
//! what is read: element depth (the `<stream:stream>` roots do not count) and the size of one
//! top-level stanza. Elements nested deeper than [`MAX_DEPTH`] are left out of what the
//! parser sees (from their start tag to their end tag), so the stanza arrives cut but
//! well-formed: a published item nested 100 levels deep must not end the connection, or
//! every subscriber would reconnect, fetch it again and drop again, for as long as the service
//! keeps it. A stanza over [`MAX_STANZA_BYTES`] fails the read, which ends the connection like
//! any other I/O error; the reconnect logic takes it from there.
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
//! - rxml refuses a carriage return alone in an attribute value (XML reads it as a line end),
//!   and the connection goes with it. Prosody writes one there for every `&#13;` an item had,
//!   so one such item made every subscriber reconnect and fetch it again, without end. Such a
//!   byte is passed on as `&#13;`, the character the publisher sent.
//! - tokio-xmpp treats a stream error from the server like any lost connection and reconnects.
//!   A `<conflict/>` (another login took our resource) must not be retried like that, so a
//!   top-level `<stream:error>` is copied to a [`StreamErrors`] slot the connector reads.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Deepest element nesting passed on inside a stanza (the stanza itself is level 1); deeper
/// elements are left out.
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

/// Where the guard of a connection leaves the last stream error it saw, and whether the
/// peer ended the stream (its end or an I/O error read): a stream that ends without either
/// was dropped on our side, by the parser refusing what came.
#[derive(Debug, Default)]
pub struct StreamErrors {
    error: Mutex<Option<StreamErrorInfo>>,
    peer_ended: std::sync::atomic::AtomicBool,
}

impl StreamErrors {
    pub fn take(&self) -> Option<StreamErrorInfo> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    fn put(&self, e: StreamErrorInfo) {
        if let Ok(mut slot) = self.error.lock() {
            *slot = Some(e);
        }
    }

    /// Whether the peer ended the stream handed over last (see [`Self::new_stream`]).
    pub fn peer_ended(&self) -> bool {
        self.peer_ended.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A new stream was handed over: nothing has ended it yet.
    pub fn new_stream(&self) {
        self.peer_ended
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    fn ended_by_peer(&self) {
        self.peer_ended
            .store(true, std::sync::atomic::Ordering::SeqCst);
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

/// Leaving out elements nested deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, Default)]
struct Elide {
    /// A `<` read and not passed on yet: whether it is depends on the tag it opens.
    held: bool,
    /// Elements open inside the element being left out, itself included (0: none).
    skip: usize,
    /// The tag being read is the start tag of an element left out.
    skip_tag: bool,
    /// Elements left out so far.
    count: u64,
}

/// The byte scanner, separate from the I/O so it can be tested directly.
#[derive(Debug, Clone)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "a byte scanner's state: each flag is one fact about where it stands"
)]
pub struct Scanner {
    state: State,
    quote: Option<u8>,
    /// A carriage return read in an attribute value, passed on once the next byte says
    /// whether a line feed follows.
    cr_held: bool,
    /// The peer closed the stream (`</stream:stream>`).
    closed: bool,
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
    /// Leaving out what is nested too deep.
    deep: Elide,
    /// The deepest nesting seen, what was left out included.
    deepest: usize,
    /// The largest top-level element accepted, in bytes.
    max_stanza: usize,
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
            cr_held: false,
            closed: false,
            slash: false,
            name: [0; 16],
            name_len: 0,
            depth: 0,
            stanza_bytes: 0,
            attr_len: 0,
            entity: false,
            cutting: false,
            cut: 0,
            deep: Elide::default(),
            deepest: 0,
            max_stanza: MAX_STANZA_BYTES,
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

    /// Elements left out so far because they were nested deeper than [`MAX_DEPTH`].
    pub fn elided(&self) -> u64 {
        self.deep.count
    }

    /// A scanner for a whole document (a file), with no bound on its size.
    pub fn for_document() -> Self {
        Self {
            max_stanza: usize::MAX,
            ..Self::default()
        }
    }

    /// The deepest nesting seen so far (elements left out included).
    pub fn deepest(&self) -> usize {
        self.deepest
    }

    /// A start tag ended (`empty`: it was `<…/>`).
    fn open(&mut self, empty: bool) {
        // Only the stream's root, at depth 0, is named `stream` for us: an element of that
        // name inside a stanza is an element like any other.
        let root = self.depth == 0 && !self.deep.skip_tag && self.name_is_stream();
        if !root {
            self.deepest = self.deepest.max(self.depth + self.deep.skip + 1);
        }
        if self.deep.skip_tag {
            self.deep.skip_tag = false;
            if !empty {
                self.deep.skip += 1;
            } else if self.deep.skip == 0 {
                self.deep.count += 1;
            }
            return;
        }
        if self.deep.skip > 0 {
            if !empty {
                self.deep.skip += 1;
            }
            return;
        }
        if empty {
            return;
        }
        if root {
            self.first = None;
            return;
        }
        self.depth += 1;
    }

    /// An end tag ended.
    fn close(&mut self) {
        if self.deep.skip > 0 {
            self.deep.skip -= 1;
            if self.deep.skip == 0 {
                self.deep.count += 1;
            }
            return;
        }
        // The root's end tag comes at depth 0.
        if self.depth == 0 {
            self.closed = true;
        }
        self.depth = self.depth.saturating_sub(1);
    }

    /// Whether the peer closed the stream.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Scan bytes as they are read (tests; see [`Scanner::filter`]).
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(bytes.len());
        self.filter(bytes, &mut out)
    }

    /// Scan bytes as they are read, and append what is passed on to `out`: all of it, less
    /// the end of over-long attribute values and the elements nested too deep. (A `<` may be
    /// held back until the next byte says what it opens.)
    pub fn filter(&mut self, buf: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.filter_with(buf, out, true)
    }

    /// [`Self::filter`], with plain runs passed on whole (`runs`) or byte by byte (the
    /// reference the tests hold the runs to).
    fn filter_with(&mut self, buf: &[u8], out: &mut Vec<u8>, runs: bool) -> io::Result<()> {
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
        let mut i = 0;
        while let Some(&b) = buf.get(i) {
            // Text and attribute values, the bulk of a stanza, pass on in runs.
            let run = if runs { self.plain_run(&buf[i..]) } else { 0 };
            if run > 0 {
                self.stanza_bytes += run;
                if self.stanza_bytes > self.max_stanza {
                    return Err(too_big());
                }
                let bytes = &buf[i..i + run];
                match (self.state, self.quote) {
                    (State::OpenAttrs, Some(_)) => self.attr_len += run,
                    // Between attributes: a name or `=` after a `/` makes it not an empty
                    // element's end.
                    (State::OpenAttrs, None) if !bytes.iter().all(u8::is_ascii_whitespace) => {
                        self.slash = false;
                    }
                    (State::OpenName, _) => bytes.iter().for_each(|&b| self.push_name(b)),
                    (State::CloseName, _) => bytes
                        .iter()
                        .filter(|b| !b.is_ascii_whitespace())
                        .for_each(|&b| self.push_name(b)),
                    _ => {}
                }
                out.extend_from_slice(bytes);
                i += run;
                continue;
            }
            i += 1;
            let start = out.len();
            self.scan_byte(b, out)?;
            if out.len() > start
                && let Some(c) = &mut self.capture
            {
                c.extend_from_slice(&out[start..]);
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
        }
        Ok(())
    }

    /// How many bytes at the start of `rest` [`Self::scan_byte`] would pass on unchanged and
    /// without a change of state: the text inside a stanza up to its next `<`, an attribute
    /// value up to its quote, an entity or its length bound, a tag's name up to its end, or
    /// what is between attributes up to the next quote, `/` or `>`. Zero when a byte must be
    /// looked at alone.
    fn plain_run(&self, rest: &[u8]) -> usize {
        if self.capture.is_some() || self.deep.skip > 0 || self.deep.skip_tag || self.cr_held {
            return 0;
        }
        match (self.state, self.quote) {
            (State::Text, _) if self.depth > 0 => {
                rest.iter().position(|&b| b == b'<').unwrap_or(rest.len())
            }
            (State::OpenAttrs, Some(q)) if !self.cutting && !self.entity => {
                let room = MAX_ATTR_BYTES.saturating_sub(self.attr_len);
                let rest = &rest[..rest.len().min(room)];
                rest.iter()
                    .position(|&b| b == q || b == b'&' || b == b'\r')
                    .unwrap_or(rest.len())
            }
            (State::OpenAttrs, None) => rest
                .iter()
                .position(|&b| matches!(b, b'"' | b'\'' | b'/' | b'>'))
                .unwrap_or(rest.len()),
            (State::OpenName, _) => rest
                .iter()
                .position(|&b| is_name_end(b))
                .unwrap_or(rest.len()),
            (State::CloseName, _) => rest.iter().position(|&b| b == b'>').unwrap_or(rest.len()),
            _ => 0,
        }
    }

    /// One byte: append what it passes on (nothing, itself, or a held `<` and itself).
    fn scan_byte(&mut self, b: u8, out: &mut Vec<u8>) -> io::Result<()> {
        // A carriage return held: with a line feed after it the parser takes the pair (as
        // one line end, a space); alone it refuses it, so it goes as the reference.
        if std::mem::take(&mut self.cr_held) {
            out.extend_from_slice(if b == b'\n' { b"\r" } else { b"&#13;" });
        }
        // Before the stream opens, only the XML declaration and whitespace may come.
        if let Some(first) = &self.first
            && b == b'!'
            && self.state == State::Lt
        {
            return Err(NotXmpp::error(first));
        }
        if self.depth == 0 && self.state == State::Text && b == b'<' && self.deep.skip == 0 {
            // Perhaps a stream error: keep its bytes until its name says.
            self.capture = Some(Vec::new());
        }
        // Inside what is left out (before this byte).
        let skipping = self.deep.skip > 0 || self.deep.skip_tag;
        let was = self.state;
        let keep = self.step(b)?;
        if was == State::Text && self.state == State::Lt {
            // What this `<` opens decides whether it is passed on.
            self.deep.held = !skipping;
            return Ok(());
        }
        if was == State::Lt {
            // Now known: a start tag deeper than the limit is left out, with all it holds.
            let held = std::mem::take(&mut self.deep.held);
            if self.state == State::OpenName && !skipping && self.depth >= MAX_DEPTH {
                self.deep.skip_tag = true;
            }
            if skipping || self.deep.skip_tag {
                return Ok(());
            }
            if held {
                out.push(b'<');
            }
        } else if skipping {
            return Ok(());
        }
        if keep {
            if b == b'\r' && self.state == State::OpenAttrs && self.quote.is_some() {
                self.cr_held = true;
            } else {
                out.push(b);
            }
        }
        Ok(())
    }

    fn step(&mut self, b: u8) -> io::Result<bool> {
        let mut keep = true;
        {
            if self.depth > 0 || self.state != State::Text {
                self.stanza_bytes += 1;
                if self.stanza_bytes > self.max_stanza {
                    return Err(too_big());
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
                        self.attrs_byte(b, &mut keep)
                    } else {
                        self.push_name(b);
                        State::OpenName
                    }
                }
                State::OpenAttrs => self.attrs_byte(b, &mut keep),
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

    fn attrs_byte(&mut self, b: u8, keep: &mut bool) -> State {
        if let Some(q) = self.quote {
            if self.deep.skip > 0 || self.deep.skip_tag {
                if b == q {
                    self.quote = None;
                }
                return State::OpenAttrs;
            }
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
            return State::OpenAttrs;
        }
        match b {
            b'"' | b'\'' => {
                self.quote = Some(b);
                self.slash = false;
                self.attr_len = 0;
                self.entity = false;
                self.cutting = false;
                State::OpenAttrs
            }
            b'/' => {
                self.slash = true;
                State::OpenAttrs
            }
            b'>' => {
                self.open(self.slash);
                State::Text
            }
            b if b.is_ascii_whitespace() => State::OpenAttrs,
            _ => {
                self.slash = false;
                State::OpenAttrs
            }
        }
    }
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the peer sent a stanza over {MAX_STANZA_BYTES} bytes; closing the connection"),
    )
}

/// A stream whose reads are checked by a [`Scanner`].
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    scanner: Scanner,
    failed: Option<io::ErrorKind>,
    errors: Option<Arc<StreamErrors>>,
    /// What the scanner passed on and the reader has not taken yet (a held `<` can make the
    /// output a byte longer than what was read).
    pending: Vec<u8>,
    /// How much of `pending` was taken.
    taken: usize,
}

/// Bytes read from the stream at a time.
const READ_CHUNK: usize = 16 * 1024;

impl<S> Guarded<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            scanner: Scanner::default(),
            failed: None,
            errors: None,
            pending: Vec::new(),
            taken: 0,
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
        let this = &mut *self;
        loop {
            if this.taken < this.pending.len() {
                let n = buf.remaining().min(this.pending.len() - this.taken);
                buf.put_slice(&this.pending[this.taken..this.taken + n]);
                this.taken += n;
                if this.taken == this.pending.len() {
                    this.pending.clear();
                    this.taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if let Some(kind) = this.failed {
                return Poll::Ready(Err(io::Error::new(
                    kind,
                    "connection closed after a limit was exceeded",
                )));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    if let Some(errors) = &this.errors {
                        errors.ended_by_peer();
                    }
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
            if read.filled().is_empty() {
                // The end of the stream.
                if let Some(errors) = &this.errors {
                    errors.ended_by_peer();
                }
                return Poll::Ready(Ok(()));
            }
            let (cut_before, elided_before) = (this.scanner.cut_values(), this.scanner.elided());
            let result = this.scanner.filter(read.filled(), &mut this.pending);
            if this.scanner.cut_values() > cut_before {
                tracing::info!(
                    "cut an attribute value to {MAX_ATTR_BYTES} bytes (the parser's limit)"
                );
            }
            if this.scanner.elided() > elided_before {
                tracing::info!(
                    "left out XML nested deeper than {MAX_DEPTH} levels (the parser's bound)"
                );
            }
            if let Some(e) = this.scanner.take_stream_error() {
                tracing::info!(condition = %e.condition, text = ?e.text, "the server sent a stream error");
                if let Some(errors) = &this.errors {
                    errors.put(e);
                    errors.ended_by_peer();
                }
            }
            // The server ended the stream itself (tokio-xmpp may ask for a new one before it
            // reads the end of the connection).
            if this.scanner.closed()
                && let Some(errors) = &this.errors
            {
                errors.ended_by_peer();
            }
            if let Err(e) = result {
                tracing::warn!(error = %e, "refusing what the peer sent");
                // Hand the parser nothing of it.
                this.pending.clear();
                this.taken = 0;
                this.failed = Some(e.kind());
                return Poll::Ready(Err(e));
            }
            // Everything read may have been left out: then read again.
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
    fn deep_nesting_is_left_out_before_the_parser() {
        // Within the bound: passed on as it is.
        let within = format!(
            "{HEADER}<message>{}x{}</message>",
            "<a>".repeat(MAX_DEPTH - 1),
            "</a>".repeat(MAX_DEPTH - 1)
        );
        let (out, sc) = filtered(&within);
        assert_eq!(out, within);
        assert_eq!(sc.elided(), 0);
        // Deeper: everything past the bound goes, from its start tag to its end tag, and the
        // stanza stays well-formed, with what comes after it.
        for n in [MAX_DEPTH, 1_000, 100_000] {
            let deep = format!(
                "{HEADER}<message>{}<b x='>'/>deep<c/>{}</message><message><after/></message>",
                "<a k='v'>".repeat(n),
                "</a>".repeat(n)
            );
            let (out, sc) = filtered(&deep);
            assert_eq!(sc.depth(), 0, "{n}");
            assert_eq!(sc.elided(), 1, "{n}");
            let kept = MAX_DEPTH - 1;
            let expected = format!(
                "{HEADER}<message>{}{}</message><message><after/></message>",
                "<a k='v'>".repeat(kept),
                "</a>".repeat(kept)
            );
            assert_eq!(out, expected, "{n}");
            let stanza: xmpp_parsers::minidom::Element = format!(
                "{}</stream:stream>",
                out.trim_start_matches("<?xml version='1.0'?>")
            )
            .parse()
            .expect("well-formed");
            assert_eq!(stanza.children().count(), 2, "{n}");
        }
        // Empty and sibling elements at the bound go one by one; text at the bound stays.
        let at_bound = format!(
            "{HEADER}<message>{}t<x/><y>1</y>u{}</message>",
            "<a>".repeat(MAX_DEPTH - 1),
            "</a>".repeat(MAX_DEPTH - 1)
        );
        let (out, sc) = filtered(&at_bound);
        assert_eq!(sc.elided(), 2);
        assert!(out.contains(&format!("{}tu{}", "<a>", "</a>")), "{out}");
        // An element named `stream` inside a stanza counts like any other.
        let streams = format!(
            "{HEADER}<message>{}{}</message>",
            "<stream xmlns='urn:x'>".repeat(1000),
            "</stream>".repeat(1000)
        );
        let (out, sc) = filtered(&streams);
        assert_eq!(sc.depth(), 0);
        assert_eq!(sc.deepest(), 1001);
        assert_eq!(
            out.matches("<stream xmlns").count(),
            MAX_DEPTH - 1,
            "the rest left out"
        );
        // Split across reads at every byte, the result is the same.
        let deep = format!(
            "{HEADER}<message>{}<b x='1'>z</b>{}</message>",
            "<a>".repeat(MAX_DEPTH),
            "</a>".repeat(MAX_DEPTH)
        );
        let (whole, _) = filtered(&deep);
        let mut sc = Scanner::default();
        let mut out = Vec::new();
        for b in deep.as_bytes() {
            sc.filter(std::slice::from_ref(b), &mut out).expect("byte");
        }
        assert_eq!(String::from_utf8(out).expect("utf8"), whole);
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

    proptest::proptest! {
        #[test]
        fn runs_pass_on_what_byte_by_byte_does(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "<message>", "</message>", "<a x='", "<b y=\"", "'>", "\">", "/>", "'/>",
                    "text ", "&amp;", "&#x9b;", "日本", "<", ">", "'", "\"", ";", "&", "<d>",
                    "</d>", "<stream:error>", "</stream:error>", "<!-- c -->", "<?pi ?>",
                    "<e ", "z", "=", " ", "/", "\n", "<long-element-name ", "</long-element-name >",
                    "</ d>", "<error/>", "</stream:error >", "\r", "\r\n",
                ]),
                0..60,
            ),
            long in 0usize..3,
            chunk in 1usize..40,
        ) {
            let filler = "v".repeat(MAX_ATTR_BYTES / 2);
            let body: String = parts
                .iter()
                .flat_map(|p| std::iter::once(*p).chain((long > 0 && p.ends_with('\'')).then_some(filler.as_str())))
                .collect();
            let input = format!("{HEADER}{}", body.repeat(long.max(1)));
            let (mut fast, mut slow) = (Scanner::default(), Scanner::default());
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let mut ra = Ok(());
            for piece in input.as_bytes().chunks(chunk) {
                ra = fast.filter_with(piece, &mut a, true);
                if ra.is_err() {
                    break;
                }
            }
            let rb = slow.filter_with(input.as_bytes(), &mut b, false);
            proptest::prop_assert_eq!(ra.is_ok(), rb.is_ok());
            if ra.is_ok() {
                proptest::prop_assert_eq!(&a, &b);
                proptest::prop_assert_eq!(fast.depth(), slow.depth());
                proptest::prop_assert_eq!(fast.cut_values(), slow.cut_values());
                proptest::prop_assert_eq!(fast.take_stream_error(), slow.take_stream_error());
            }
        }
    }

    fn filtered(s: &str) -> (String, Scanner) {
        let mut sc = Scanner::default();
        let mut out = Vec::new();
        sc.filter(s.as_bytes(), &mut out).expect("accepted");
        (String::from_utf8(out).expect("still UTF-8"), sc)
    }

    #[test]
    fn a_carriage_return_alone_in_an_attribute_reaches_the_parser_as_a_reference() {
        let stanza = "<message xmlns='jabber:client'><x xmlns='urn:x' note='a\rb' crlf='c\r\nd'>e\rf</x></message>";
        // Control: the parser refuses the stanza as it came.
        let raw: Result<xmpp_parsers::minidom::Element, _> = stanza.parse();
        assert!(raw.is_err(), "{raw:?}");
        let (out, _) = filtered(&format!("{HEADER}{stanza}"));
        let passed = &out[HEADER.len()..];
        assert!(passed.contains("note='a&#13;b'"), "{passed}");
        assert!(passed.contains("crlf='c\r\nd'"), "{passed}");
        assert!(
            passed.contains(">e\rf<"),
            "text is left as it came: {passed}"
        );
        let el: xmpp_parsers::minidom::Element = passed.parse().expect("now it parses");
        let x = el.get_child("x", "urn:x").expect("x");
        assert_eq!(
            x.attr("note"),
            Some("a\rb"),
            "the character the publisher sent"
        );
        assert_eq!(
            x.attr("crlf"),
            Some("c d"),
            "a line end, as the parser reads one"
        );
    }

    #[test]
    fn the_peer_closing_the_stream_is_seen() {
        let (_, open) = filtered(&format!("{HEADER}<message><x/></message>"));
        assert!(!open.closed(), "control: still open");
        let (_, closed) = filtered(&format!("{HEADER}<message><x/></message></stream:stream>"));
        assert!(closed.closed());
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
