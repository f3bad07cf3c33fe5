//! An item as a tree: the `<item/>` element as received, kept as plain data (no XML library
//! handles), bounded and sanitised when it is built.
//!
//! The tree is a flat list of nodes in document order, each with its depth: an element (its
//! namespace, name and attributes) or a run of text. Children of node `i` are the nodes after
//! it one level deeper, up to the next node at `i`'s depth or above. A flat list costs one
//! allocation for the nodes plus their strings, and every walk over it is a loop, so no
//! payload can overflow the stack.
//!
//! **Bounds** (a peer controls the payload; see the README): at most [`MAX_DEPTH`] levels of
//! elements, [`MAX_NODES`] nodes, and [`MAX_BYTES`] bytes of names, attribute values and text
//! together. What lies past a bound is left out, and [`Tree::cut`] says which bound cut it.
//! **Sanitised:** every string went through [`crate::sanitize`] (control and bidi characters
//! gone, line breaks and tabs kept), so any part can be printed.
//!
//! The one-line summary of a payload ([`Tree::summary`]), the item view, search and export
//! all read this tree.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Deepest element kept (the `<item/>` is depth 0).
pub const MAX_DEPTH: usize = 32;
/// Most nodes (elements and runs of text) kept.
pub const MAX_NODES: usize = 32_768;
/// Most bytes of names, attribute values and text kept.
pub const MAX_BYTES: usize = 300_000;
/// Longest one-line summary, in characters.
pub const SUMMARY_CHARS: usize = 4096;
/// Attribute values longer than this are left out of the summary line.
const SUMMARY_ATTR_CHARS: usize = 24;

/// Which bound cut a tree short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cut {
    Depth,
    Nodes,
    Bytes,
    /// A name over 256 characters or a namespace over 1,024, shortened.
    Names,
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Depth => "nested deeper than 32 levels",
            Self::Nodes => "more than 32,768 elements and texts",
            Self::Bytes => "more than 300,000 bytes of text",
            Self::Names => "a name or namespace too long, shortened",
        })
    }
}

/// Where a string is in the tree's one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
struct Span {
    start: u32,
    len: u32,
}

/// Where a string kept beside a tree ([`Tree::keep`]) is in its buffer, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kept(Span);

impl Kept {
    pub const NONE: Self = Self(Span {
        start: u32::MAX,
        len: u32::MAX,
    });
}

/// A node as stored: its strings are spans of the tree's buffer, so a tree costs two
/// allocations whatever it holds (20 bytes a node and 12 to 16 an attribute, besides its text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Stored {
    depth: u16,
    /// Index into the namespaces; `TEXT` for a run of text.
    ns: u16,
    /// The element's name, or the text.
    span: Span,
    /// The element's attributes: in the builder `attrs[first_attr..first_attr + attr_count]`;
    /// in a tree, they start `first_attr` words into its attributes.
    first_attr: u32,
    attr_count: u16,
}

const TEXT: u16 = u16::MAX;

/// One node of a [`Tree`], borrowed from it.
#[derive(Debug, Clone)]
pub enum Node<'a> {
    Element {
        depth: usize,
        name: &'a str,
        attrs: Attrs<'a>,
    },
    Text {
        depth: usize,
        text: &'a str,
    },
}

impl<'a> Node<'a> {
    pub fn depth(&self) -> usize {
        match self {
            Self::Element { depth, .. } | Self::Text { depth, .. } => *depth,
        }
    }

    /// The element's name (`None` for text).
    pub fn name(&self) -> Option<&'a str> {
        match self {
            Self::Element { name, .. } => Some(name),
            Self::Text { .. } => None,
        }
    }

    /// The element's attributes (none for text).
    pub fn attrs(&self) -> Attrs<'a> {
        match self {
            Self::Element { attrs, .. } => attrs.clone(),
            Self::Text { .. } => Attrs {
                words: &[],
                left: 0,
                buf: "",
            },
        }
    }

    pub fn is_element(&self) -> bool {
        matches!(self, Self::Element { .. })
    }
}

/// An element's attributes, as `(name, value)`.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    /// The attributes from this element's first on, each a name and a value packed as
    /// [`pack_span`] packs them.
    words: &'a [u32],
    /// How many are this element's.
    left: u16,
    buf: &'a str,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        let (k, rest) = unpack_span(self.words)?;
        let (v, rest) = unpack_span(rest)?;
        self.words = rest;
        Some((slice(self.buf, k), slice(self.buf, v)))
    }
}

/// A span as one word when it is one of the [`WORDS`] (most attribute names are), else two:
/// its start and its length. A span in the buffer starts below [`WORD`].
fn pack_span(s: Span, out: &mut Vec<u32>) {
    if s.start & WORD != 0 {
        out.push(s.start);
    } else {
        out.extend([s.start, s.len]);
    }
}

/// The span [`pack_span`] packed at the start of `w`, and the words after it.
fn unpack_span(w: &[u32]) -> Option<(Span, &[u32])> {
    let (&start, rest) = w.split_first()?;
    if start & WORD != 0 {
        let len = WORDS.get((start & !WORD) as usize).map_or(0, |w| w.len());
        return Some((
            Span {
                start,
                len: u32::try_from(len).unwrap_or(0),
            },
            rest,
        ));
    }
    let (&len, rest) = rest.split_first()?;
    Some((Span { start, len }, rest))
}

/// Words a node takes in [`Tree::words`]: depth and namespace, the span, the first attribute
/// and the attribute count.
const NODE_WORDS: usize = 5;

impl Stored {
    fn pack(&self, out: &mut Vec<u32>) {
        out.extend([
            u32::from(self.depth) << 16 | u32::from(self.ns),
            self.span.start,
            self.span.len,
            self.first_attr,
            u32::from(self.attr_count),
        ]);
    }

    fn unpack(w: &[u32]) -> Option<Self> {
        let &[head, start, len, first_attr, count] = w.get(..NODE_WORDS)? else {
            return None;
        };
        Some(Self {
            depth: (head >> 16) as u16,
            ns: (head & 0xffff) as u16,
            span: Span { start, len },
            first_attr,
            attr_count: u16::try_from(count).unwrap_or(u16::MAX),
        })
    }
}

fn slice(buf: &str, s: Span) -> &str {
    if s.start & WORD != 0 {
        return WORDS.get((s.start & !WORD) as usize).copied().unwrap_or("");
    }
    let start = s.start as usize;
    buf.get(start..start + s.len as usize).unwrap_or("")
}

/// A span whose start has this bit set is not in the tree's buffer: it is the word of that
/// index in [`WORDS`]. (A buffer is at most [`MAX_BYTES`] long, far below it.)
const WORD: u32 = 1 << 31;

/// The names and namespaces that most items carry (ours, Wokkel's, Atom's, JSON's), kept once
/// for all trees instead of in each tree's buffer: with 100,000 items held this is several
/// megabytes.
const WORDS: &[&str] = &[
    "http://jabber.org/protocol/pubsub",
    "http://jabber.org/protocol/pubsub#event",
    "urn:x-pubsub-tui:item:0",
    "http://www.w3.org/2005/Atom",
    "urn:xmpp:json:0",
    "item",
    "id",
    "publisher",
    "post",
    "sender",
    "time",
    "message",
    "session",
    "seq",
    "void",
    "json",
    "entry",
    "title",
    "summary",
    "content",
    "author",
    "name",
    "updated",
    "published",
    "link",
    "href",
    "rel",
    "type",
    "text",
    "html",
    "xhtml",
    "unit",
];

/// `s` as one of the [`WORDS`].
fn word(s: &str) -> Option<Span> {
    let i = WORDS.iter().position(|w| *w == s)?;
    Some(Span {
        start: WORD | u32::try_from(i).ok()?,
        len: u32::try_from(s.len()).ok()?,
    })
}

/// How many of the attributes kept last a new string is compared with, to be kept once when it
/// repeats one of them (a sender in two attributes, a text that a `message` attribute starts
/// with). Bounded, so that building stays linear.
const RECENT: usize = 16;

/// A bounded, sanitised XML tree (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Tree {
    buf: Box<str>,
    /// The nodes, then the attributes, then the namespaces, as 32-bit words ([`NODE_WORDS`]
    /// a node, two to four an attribute ([`pack_span`]), two a namespace): one allocation
    /// for the three.
    words: Box<[u32]>,
    /// How many nodes `words` holds, and where its namespaces start.
    nodes: u32,
    namespaces_at: u32,
    cut: Option<Cut>,
    /// Characters left out as unsafe to show (controls, bidi and invisible format characters).
    removed: u32,
}

/// Builds a [`Tree`] in document order, applying the bounds. The XML reader (in
/// `xmpp::proto::tree`) walks its elements and calls [`Self::open`] and [`Self::text`].
#[derive(Debug, Default)]
pub struct Builder {
    buf: String,
    nodes: Vec<Stored>,
    attrs: Vec<(Span, Span)>,
    namespaces: Vec<Span>,
    /// The namespaces as given (before cleaning), by index: an item has a few, so a search
    /// costs less than hashing.
    ns_given: Vec<Box<str>>,
    cut: Option<Cut>,
    removed: u32,
}

/// Characters of `raw` that cleaning leaves out, or changes (the line and paragraph
/// separators become line breaks): not line breaks and tabs, which stay.
fn unsafe_chars(raw: &str) -> u32 {
    let n = raw
        .chars()
        .filter(|&c| !matches!(c, '\n' | '\t' | '\r') && !crate::sanitize::unchanged(c))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Past the node or byte bound, nothing more is kept.
    fn full(&self) -> bool {
        matches!(self.cut, Some(Cut::Nodes | Cut::Bytes))
    }

    fn room(&mut self, depth: usize, bytes: usize) -> bool {
        if self.full() {
            return false;
        }
        if depth > MAX_DEPTH {
            self.cut.get_or_insert(Cut::Depth);
            return false;
        }
        if self.nodes.len() >= MAX_NODES {
            self.cut = Some(Cut::Nodes);
            return false;
        }
        if self.buf.len() + bytes > MAX_BYTES {
            self.cut = Some(Cut::Bytes);
            return false;
        }
        true
    }

    /// `s` as a span: one of the [`WORDS`], the value of a recent attribute that is the same
    /// string, or else appended to the buffer.
    fn intern(&mut self, s: &str) -> Span {
        if let Some(span) = word(s) {
            return span;
        }
        if s.len() >= 8 {
            let recent = self.attrs.iter().rev().take(RECENT);
            if let Some(&(_, v)) = recent.into_iter().find(|(_, v)| slice(&self.buf, *v) == s) {
                return v;
            }
        }
        self.push(s)
    }

    fn push(&mut self, s: &str) -> Span {
        let start = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf.push_str(s);
        Span {
            start,
            len: u32::try_from(s.len()).unwrap_or(0),
        }
    }

    /// An element at `depth`. `false` when it was left out (a bound): skip its content too.
    pub fn open<'a>(
        &mut self,
        depth: usize,
        ns: &str,
        name: &str,
        attrs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        // Names are kept to 256 characters and namespaces to 1,024 (shortened, the tree says
        // so: such an item cannot be published again as it came).
        if name.chars().count() > 256 || ns.chars().count() > 1024 {
            self.cut.get_or_insert(Cut::Names);
        }
        let name = crate::sanitize::display_max_cow(name, 256);
        let mut removed = 0u32;
        let attrs: Vec<(Cow<'_, str>, Cow<'_, str>)> = attrs
            .map(|(k, raw)| {
                let v = crate::sanitize::text_cow(raw);
                if let Cow::Owned(_) = v {
                    removed = removed.saturating_add(unsafe_chars(raw));
                }
                (crate::sanitize::display_max_cow(k, 256), v)
            })
            .collect();
        self.removed = self.removed.saturating_add(removed);
        if attrs.iter().any(|(k, _)| k.ends_with('…')) {
            self.cut.get_or_insert(Cut::Names);
        }
        let known = self.ns_given.iter().rposition(|n| **n == *ns);
        let ns_bytes = if known.is_some() {
            0
        } else {
            ns.len().min(4096)
        };
        let bytes =
            ns_bytes + name.len() + attrs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if !self.room(depth, bytes) {
            return false;
        }
        let ns = known.unwrap_or_else(|| {
            let span = self.intern(&crate::sanitize::display_max(ns, 1024));
            self.namespaces.push(span);
            self.ns_given.push(ns.into());
            self.namespaces.len() - 1
        });
        let span = self.intern(&name);
        let first_attr = u32::try_from(self.attrs.len()).unwrap_or(u32::MAX);
        for (k, v) in &attrs {
            let pair = (self.intern(k), self.intern(v));
            self.attrs.push(pair);
        }
        self.nodes.push(Stored {
            depth: u16::try_from(depth).unwrap_or(u16::MAX),
            ns: u16::try_from(ns).unwrap_or(TEXT - 1),
            span,
            first_attr,
            attr_count: u16::try_from(attrs.len()).unwrap_or(u16::MAX),
        });
        true
    }

    /// A run of text inside the element opened last at `depth - 1`. Whitespace with a line
    /// break in it (indentation between elements) is not kept; a space between inline
    /// elements (`Hello <em>world</em> & co`) is. Text over the byte bound is cut.
    pub fn text(&mut self, depth: usize, raw: &str) {
        let indentation = raw.trim().is_empty() && (raw.is_empty() || raw.contains(['\n', '\r']));
        if indentation || self.cut.is_some_and(|c| c != Cut::Depth) {
            return;
        }
        let mut text = crate::sanitize::text_cow(raw);
        if let Cow::Owned(_) = text {
            self.removed = self.removed.saturating_add(unsafe_chars(raw));
        }
        // Adjacent runs (a text split by a left-out element) join. The last run grows at the
        // end of the buffer: one kept elsewhere (a word, a repeated value) moves there first,
        // and its copy counts against the byte bound.
        let joins = self
            .nodes
            .last()
            .is_some_and(|l| l.ns == TEXT && usize::from(l.depth) == depth);
        if joins
            && let Some(&last) = self.nodes.last()
            && !(last.span.start & WORD == 0
                && (last.span.start + last.span.len) as usize == self.buf.len())
        {
            let run = slice(&self.buf, last.span).to_owned();
            if self.buf.len() + run.len() > MAX_BYTES {
                self.cut = Some(Cut::Bytes);
                return;
            }
            let span = self.push(&run);
            if let Some(last) = self.nodes.last_mut() {
                last.span = span;
            }
        }
        if self.buf.len() + text.len() > MAX_BYTES {
            let mut end = MAX_BYTES.saturating_sub(self.buf.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text = match text {
                Cow::Borrowed(t) => Cow::Borrowed(&t[..end]),
                Cow::Owned(mut t) => {
                    t.truncate(end);
                    Cow::Owned(t)
                }
            };
            self.cut = Some(Cut::Bytes);
            if text.is_empty() {
                return;
            }
        } else if !self.room(depth, text.len()) {
            return;
        }
        if joins && let Some(last) = self.nodes.last_mut() {
            self.buf.push_str(&text);
            last.span.len += u32::try_from(text.len()).unwrap_or(0);
            return;
        }
        let span = self.intern(&text);
        self.nodes.push(Stored {
            depth: u16::try_from(depth).unwrap_or(u16::MAX),
            ns: TEXT,
            span,
            first_attr: 0,
            attr_count: 0,
        });
    }

    pub fn finish(self) -> Tree {
        // An element's attributes are packed where its `first_attr` then says, in words from
        // the start of the attributes.
        let mut attrs = Vec::with_capacity(self.attrs.len() * 4);
        let mut words = Vec::with_capacity(
            self.nodes.len() * NODE_WORDS + self.attrs.len() * 3 + self.namespaces.len() * 2,
        );
        for n in &self.nodes {
            let first = n.first_attr as usize;
            let own = self
                .attrs
                .get(first..first + usize::from(n.attr_count))
                .unwrap_or(&[]);
            let at = u32::try_from(attrs.len()).unwrap_or(u32::MAX);
            for &(k, v) in own {
                pack_span(k, &mut attrs);
                pack_span(v, &mut attrs);
            }
            Stored {
                first_attr: at,
                ..*n
            }
            .pack(&mut words);
        }
        words.extend_from_slice(&attrs);
        let namespaces_at = u32::try_from(words.len()).unwrap_or(u32::MAX);
        for n in &self.namespaces {
            words.extend([n.start, n.len]);
        }
        Tree {
            buf: self.buf.into_boxed_str(),
            words: words.into_boxed_slice(),
            nodes: u32::try_from(self.nodes.len()).unwrap_or(u32::MAX),
            namespaces_at,
            cut: self.cut,
            removed: self.removed,
        }
    }
}

impl Tree {
    /// Nodes in the tree.
    pub fn len(&self) -> usize {
        self.nodes as usize
    }

    pub fn is_empty(&self) -> bool {
        self.nodes == 0
    }

    /// Node `i` as stored.
    fn stored(&self, i: usize) -> Option<Stored> {
        if i >= self.len() {
            return None;
        }
        Stored::unpack(self.words.get(i * NODE_WORDS..)?)
    }

    /// The attributes of a node whose own start `first` words into them.
    fn attrs_at(&self, first: usize, count: u16) -> Attrs<'_> {
        let base = self.len() * NODE_WORDS;
        Attrs {
            words: self
                .words
                .get(base + first..self.namespaces_at as usize)
                .unwrap_or(&[]),
            left: count,
            buf: &self.buf,
        }
    }

    /// Namespace `k`'s span.
    fn namespace(&self, k: usize) -> Option<Span> {
        let at = self.namespaces_at as usize + k * 2;
        let &[start, len] = self.words.get(at..at + 2)? else {
            return None;
        };
        Some(Span { start, len })
    }

    /// Node `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<Node<'_>> {
        let n = self.stored(i)?;
        let depth = usize::from(n.depth);
        Some(if n.ns == TEXT {
            Node::Text {
                depth,
                text: slice(&self.buf, n.span),
            }
        } else {
            let first = n.first_attr as usize;
            Node::Element {
                depth,
                name: slice(&self.buf, n.span),
                attrs: self.attrs_at(first, n.attr_count),
            }
        })
    }

    /// Node `i` (a text of nothing past the end).
    pub fn node(&self, i: usize) -> Node<'_> {
        self.get(i).unwrap_or(Node::Text { depth: 0, text: "" })
    }

    /// Every node, in document order.
    pub fn iter(&self) -> impl Iterator<Item = Node<'_>> {
        (0..self.len()).map(|i| self.node(i))
    }

    fn depth(&self, i: usize) -> usize {
        self.stored(i).map_or(0, |n| usize::from(n.depth))
    }

    /// Characters left out as unsafe to show: controls, bidi and invisible format characters
    /// (a right-to-left override can make `exe.txt` of `txt.exe`).
    pub fn removed(&self) -> u32 {
        self.removed
    }

    /// Nothing was left out or removed: the tree is the item as it came.
    pub fn is_whole(&self) -> bool {
        self.cut.is_none() && self.removed == 0
    }

    /// Which bound left part of the payload out, if one did.
    pub fn cut(&self) -> Option<Cut> {
        self.cut
    }

    /// The namespace of element `i` (empty for text).
    pub fn ns(&self, i: usize) -> &str {
        match self.stored(i) {
            Some(n) if n.ns != TEXT => self
                .namespace(usize::from(n.ns))
                .map_or("", |s| slice(&self.buf, s)),
            _ => "",
        }
    }

    /// The nodes directly inside node `i`, by index.
    pub fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let depth = self.depth(i);
        (i + 1..self.len())
            .take_while(move |&j| self.depth(j) > depth)
            .filter(move |&j| self.depth(j) == depth + 1)
    }

    /// The element children of `i`, by index.
    pub fn child_elements(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.children(i)
            .filter(|&j| self.stored(j).is_some_and(|n| n.ns != TEXT))
    }

    /// The first element child of `i` named `name` in namespace `ns`.
    pub fn child(&self, i: usize, name: &str, ns: &str) -> Option<usize> {
        self.child_elements(i)
            .find(|&j| self.node(j).name() == Some(name) && self.ns(j) == ns)
    }

    /// The end (exclusive) of node `i`'s subtree.
    pub fn subtree_end(&self, i: usize) -> usize {
        let depth = self.depth(i);
        (i + 1..self.len())
            .find(|&j| self.depth(j) <= depth)
            .unwrap_or(self.len())
    }

    /// The text directly inside element `i` (its runs of text, joined).
    pub fn own_text(&self, i: usize) -> String {
        self.children(i)
            .filter_map(|j| match self.node(j) {
                Node::Text { text, .. } => Some(text),
                Node::Element { .. } => None,
            })
            .collect()
    }

    /// All the text inside element `i`, at any depth, runs joined with a space.
    pub fn deep_text(&self, i: usize) -> String {
        let mut out = String::new();
        for j in (i + 1).min(self.len())..self.subtree_end(i) {
            if let Node::Text { text, .. } = self.node(j) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(text.trim());
            }
        }
        out
    }

    /// The value of attribute `name` of element `i`.
    pub fn attr(&self, i: usize, name: &str) -> Option<&str> {
        self.get(i)?
            .attrs()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Every string in the tree a search looks at: text, attribute values, element names.
    pub fn strings(&self) -> impl Iterator<Item = &str> {
        self.iter().flat_map(|n| {
            let own = match n {
                Node::Element { .. } => None,
                Node::Text { text, .. } => Some(text),
            };
            own.into_iter().chain(n.attrs().map(|(_, v)| v))
        })
    }

    /// The values of the fields called `name` anywhere in the payload: the text of each
    /// element of that name (trimmed), and the value of each attribute of that name.
    pub fn field_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        (0..self.len()).flat_map(move |i| {
            let node = self.node(i);
            let element =
                (node.name() == Some(name) && i > 0).then(|| self.deep_text(i).trim().to_owned());
            let attrs = node
                .attrs()
                .filter(move |(k, _)| *k == name)
                .map(|(_, v)| v.to_owned());
            element.into_iter().chain(attrs)
        })
    }

    /// The unit a field's element names in a `unit` (or `units`) attribute, as in
    /// `<temp unit='C'>21.5</temp>`.
    pub fn field_unit(&self, name: &str) -> Option<&str> {
        let i = (1..self.len()).find(|&i| self.node(i).name() == Some(name))?;
        self.attr(i, "unit").or_else(|| self.attr(i, "units"))
    }

    /// The payload: the first element inside the `<item/>`.
    pub fn payload(&self) -> Option<usize> {
        self.child_elements(0).next()
    }

    /// One line saying what the payload holds, derived from its structure: the payload's name,
    /// then each leaf element with its text and short attribute values, so that
    /// `<reading><temp unit='C'>21.5</temp><hum>40</hum></reading>` reads
    /// `reading · temp 21.5 C · hum 40`. Bounded to [`SUMMARY_CHARS`].
    pub fn summary(&self) -> String {
        let Some(p) = self.payload() else {
            return "(no payload)".to_owned();
        };
        let name = self.node(p).name().unwrap_or_default();
        let mut parts = vec![name.to_owned()];
        let mut len = name.len();
        let end = self.subtree_end(p);
        for i in p..end {
            if len > SUMMARY_CHARS * 2 {
                break;
            }
            if !self.node(i).is_element() || self.child_elements(i).next().is_some() {
                continue;
            }
            let mut part = if i == p {
                String::new()
            } else {
                self.node(i).name().unwrap_or_default().to_owned()
            };
            let text = collapse(&self.own_text(i));
            let mut add = |s: &str| {
                if !s.is_empty() {
                    if !part.is_empty() {
                        part.push(' ');
                    }
                    part.push_str(s);
                }
            };
            add(&text);
            for (_, v) in self.node(i).attrs() {
                if v.chars().count() <= SUMMARY_ATTR_CHARS {
                    add(&collapse(v));
                }
            }
            if !part.is_empty() && (i != p || parts.len() == 1) {
                len += part.len() + 3;
                parts.push(part);
            }
        }
        crate::sanitize::display_max(&parts.join(" · "), SUMMARY_CHARS)
    }

    /// Keeps `strings` with the tree, in its buffer: each is found there when the payload
    /// holds it already (an item's id, sender, time and text mostly are), or else appended.
    /// The tree's nodes never point at what is appended, so the tree reads the same. An item
    /// then costs one buffer for all its strings instead of an allocation for each.
    pub fn keep<const N: usize>(&mut self, strings: [Option<&str>; N]) -> [Kept; N] {
        let mut out = [Kept::NONE; N];
        let mut added = String::new();
        for (k, s) in out.iter_mut().zip(strings) {
            let Some(s) = s else { continue };
            let at = if s.is_empty() {
                Some(0)
            } else {
                self.buf
                    .find(s)
                    .or_else(|| added.find(s).map(|i| self.buf.len().saturating_add(i)))
            };
            let start = at.unwrap_or_else(|| {
                added.push_str(s);
                self.buf.len() + added.len() - s.len()
            });
            *k = Kept(Span {
                start: u32::try_from(start).unwrap_or(u32::MAX),
                len: u32::try_from(s.len()).unwrap_or(0),
            });
        }
        if !added.is_empty() {
            let mut buf = String::from(std::mem::take(&mut self.buf));
            buf.push_str(&added);
            self.buf = buf.into_boxed_str();
        }
        out
    }

    /// A string kept with [`Self::keep`].
    pub fn kept(&self, k: Kept) -> Option<&str> {
        if k == Kept::NONE {
            return None;
        }
        let start = k.0.start as usize;
        Some(self.buf.get(start..start + k.0.len as usize).unwrap_or(""))
    }

    /// The bytes the tree holds, roughly (its strings and nodes), for the feed's memory bound.
    pub fn weight(&self) -> usize {
        self.buf.len() + self.words.len() * 4
    }

    /// The tree as compact XML, namespaces declared where they change. Nothing is lost that
    /// the tree kept (a cut tree gives what was kept, well-formed).
    pub fn to_xml(&self) -> String {
        // Names, values and text once each, and room for the markup and namespaces around.
        let mut out = String::with_capacity(self.buf.len() * 2 + 64);
        self.write(&mut out, false);
        out
    }

    /// The tree as indented lines of XML for a person to read (text of several lines shows as
    /// its lines; everything is already safe to show).
    pub fn pretty(&self) -> Vec<String> {
        let mut out = String::new();
        self.write(&mut out, true);
        let mut lines: Vec<String> = out.lines().map(str::to_owned).collect();
        if let Some(cut) = self.cut {
            lines.push(format!("… (the rest was left out: {cut})"));
        }
        lines
    }

    /// The payload (the first element inside the `<item/>`) as compact XML, its namespace
    /// declared on it: the same payload gives the same text, whichever item carried it.
    pub fn payload_xml(&self) -> Option<String> {
        let p = self.payload()?;
        let mut out = String::new();
        self.write_range(&mut out, false, p, self.subtree_end(p));
        Some(out)
    }

    fn write(&self, out: &mut String, pretty: bool) {
        self.write_range(out, pretty, 0, self.len());
    }

    /// Write nodes `start..end` (a whole subtree).
    fn write_range(&self, out: &mut String, pretty: bool, start: usize, end_at: usize) {
        // Open elements, by index.
        let mut open: Vec<usize> = Vec::new();
        let nl = |out: &mut String| {
            if pretty {
                out.push('\n');
            }
        };
        let pad = |depth: usize| {
            if pretty {
                "  ".repeat(depth)
            } else {
                String::new()
            }
        };
        let base = self.depth(start);
        let pad = |depth: usize| pad(depth - base.min(depth));
        let close = |out: &mut String, j: usize| {
            out.push_str(&pad(self.depth(j)));
            out.push_str("</");
            out.push_str(self.node(j).name().unwrap_or_default());
            out.push('>');
            nl(out);
        };
        let mut i = start;
        while i < end_at {
            let node = self.node(i);
            while let Some(&j) = open.last().filter(|&&j| self.depth(j) >= node.depth()) {
                open.pop();
                close(out, j);
            }
            match node {
                Node::Text { text, .. } if pretty => {
                    for line in text.trim().lines() {
                        out.push_str(&pad(node.depth()));
                        escape(out, line, false);
                        out.push('\n');
                    }
                }
                Node::Text { text, .. } => escape(out, text, false),
                Node::Element { name, attrs, .. } => {
                    let ns = self.stored(i).map(|n| n.ns);
                    out.push_str(&pad(self.depth(i)));
                    out.push('<');
                    out.push_str(name);
                    let parent_ns = open.last().map(|&j| self.stored(j).map(|n| n.ns));
                    if parent_ns != Some(ns) {
                        out.push_str(" xmlns='");
                        escape(out, self.ns(i), true);
                        out.push('\'');
                    }
                    for (k, v) in attrs {
                        out.push(' ');
                        out.push_str(k);
                        out.push_str("='");
                        escape(out, v, true);
                        out.push('\'');
                    }
                    let end = self.subtree_end(i);
                    if end == i + 1 {
                        out.push_str("/>");
                        nl(out);
                    } else if let (true, 2, Node::Text { text, .. }) =
                        (pretty, end - i, self.node(i + 1))
                        && !text.trim().contains('\n')
                    {
                        // An element holding one line of text reads best on one line.
                        out.push('>');
                        escape(out, text.trim(), false);
                        let _ = writeln!(out, "</{name}>");
                        i += 1;
                    } else {
                        out.push('>');
                        nl(out);
                        open.push(i);
                    }
                }
            }
            i += 1;
        }
        while let Some(j) = open.pop() {
            close(out, j);
        }
    }
}

/// Whitespace runs become one space; ends trimmed.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Escape text for XML character data (`attr`: for a single-quoted attribute value).
fn escape(out: &mut String, s: &str, attr: bool) {
    let special =
        |b: u8| matches!(b, b'&' | b'<' | b'>') || attr && matches!(b, b'\'' | b'\n' | b'\t');
    // Runs with nothing to escape go in whole (all the special characters are ASCII).
    let mut rest = s;
    while let Some(at) = rest.bytes().position(special) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\'' => "&apos;",
            b'\n' => "&#10;",
            _ => "&#9;",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The escape as a character at a time, for reference.
    fn escape_each(s: &str, attr: bool) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '\'' if attr => out.push_str("&apos;"),
                '\n' if attr => out.push_str("&#10;"),
                '\t' if attr => out.push_str("&#9;"),
                c => out.push(c),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn escaping_in_runs_is_escaping_each_character(
            s in "([&<>'\"\n\t ]|[a-z]|\\PC){0,40}",
            attr: bool,
        ) {
            let mut out = String::from("x");
            escape(&mut out, &s, attr);
            proptest::prop_assert_eq!(out, format!("x{}", escape_each(&s, attr)));
        }
    }
}
