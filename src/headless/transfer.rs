//! `pubsub-tui import`: publish the items of an export file (NDJSON, CSV or XML, as
//! [`crate::feed::export`] writes them) to a node, with their ids and payloads.
//!
//! The whole file is read and checked before connecting: a bad record stops the import with
//! its line, and nothing is published. Then the node's items are retrieved, and an item whose
//! id is there with the same payload is skipped, so an import that stopped half way can be run
//! again. The rest are published in the file's order, several in flight at once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, bail};
use xmpp_parsers::minidom::Element;

use super::Settings;
use crate::feed::export::{self, CSV_COLUMNS, Format};
use crate::xmpp::error::{Condition, Op, explain};
use crate::xmpp::proto;
use crate::xmpp::{Answer, Command, NetEvent, NodeKey};

/// The largest file read.
const MAX_FILE_BYTES: u64 = 1 << 30;
/// Publishes sent before their answers come.
const IN_FLIGHT: usize = 16;
/// Bad records named before giving up on the rest.
const MAX_ERRORS_SHOWN: usize = 10;

/// One item of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Where it is in the file (a line, or the item's number in an XML file).
    pub at: String,
    pub id: Option<String>,
    pub payload: Element,
}

impl Record {
    /// The payload as the tree writes it, to compare with what the service has.
    /// `None` when the tree had to leave part of it out: then it cannot be compared, and is
    /// published.
    fn canonical(&self) -> Option<String> {
        let tree = proto::tree::tree_of(&proto::item::item_with(None, self.payload.clone()));
        tree.payload_xml().filter(|_| tree.is_whole())
    }
}

/// An `<item/>` element's id and payload.
fn from_item(at: String, item: &Element, id: Option<String>) -> Result<Record, String> {
    if item.name() != "item" {
        return Err(format!("{at}: <{}> is not an <item/>", item.name()));
    }
    let mut children = item.children();
    let Some(payload) = children.next() else {
        return Err(format!("{at}: the <item/> holds no payload element"));
    };
    if children.next().is_some() {
        return Err(format!(
            "{at}: the <item/> holds more than one payload element"
        ));
    }
    let own = item.attr("id").map(str::to_owned);
    if let (Some(given), Some(own)) = (&id, &own)
        && given != own
    {
        let (g, o) = (
            crate::sanitize::display_max(given, 60),
            crate::sanitize::display_max(own, 60),
        );
        return Err(format!(
            "{at}: the id field says {g:?} and the item's XML says {o:?}: make them agree"
        ));
    }
    let id = id.or(own);
    if let Some(id) = &id {
        let shown = crate::sanitize::display_max(id, 60);
        if id.trim().is_empty() || id.chars().any(char::is_control) || id.len() > 1023 {
            return Err(format!(
                "{at}: the id {shown:?} is not one a service takes (empty, control characters, or over 1,023 bytes)"
            ));
        }
    }
    Ok(Record {
        at,
        id,
        payload: payload.clone(),
    })
}

fn parse_item_xml(at: &str, xml: &str) -> Result<Element, String> {
    if xml.len() > proto::MAX_ITEM_XML_BYTES {
        return Err(format!(
            "{at}: the item is {} bytes of XML; an item is at most {}",
            xml.len(),
            proto::MAX_ITEM_XML_BYTES
        ));
    }
    // The item around the payload is one level more.
    proto::check_depth(xml, proto::MAX_PAYLOAD_DEPTH + 1).map_err(|e| format!("{at}: {e}"))?;
    xml.parse::<Element>()
        .map_err(|e| format!("{at}: the xml is not one XML element ({e})"))
}

fn read_ndjson(text: &str) -> Vec<Result<Record, String>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let at = format!("line {}", n + 1);
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{at}: not a JSON object ({e})"))?;
            let xml = v["xml"]
                .as_str()
                .ok_or_else(|| format!("{at}: no \"xml\" field with the item's XML"))?;
            let id = v["id"].as_str().map(str::to_owned);
            from_item(at.clone(), &parse_item_xml(&at, xml)?, id)
        })
        .collect()
}

fn read_csv(text: &str) -> Vec<Result<Record, String>> {
    let rows = match export::parse_csv(text) {
        Ok(r) => r,
        Err(e) => return vec![Err(e)],
    };
    let Some((header, rows)) = rows.split_first() else {
        return Vec::new();
    };
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(xml_col), id_col) = (col("xml"), col("id")) else {
        return vec![Err(format!(
            "line 1: the header has no \"xml\" column (an export has: {})",
            CSV_COLUMNS.join(",")
        ))];
    };
    // Lines, counting those inside quoted fields.
    let mut line = 2;
    rows.iter()
        .filter(|r| !(r.len() == 1 && r[0].is_empty()))
        .map(|row| {
            let at = format!("line {line}");
            line += 1 + row.iter().map(|f| f.matches('\n').count()).sum::<usize>();
            let xml = row
                .get(xml_col)
                .map(|f| export::csv_unneutralise(f))
                .filter(|x| !x.is_empty())
                .ok_or_else(|| format!("{at}: the xml field is empty"))?;
            let id = id_col
                .and_then(|c| row.get(c))
                .map(|f| export::csv_unneutralise(f).to_owned())
                .filter(|f| !f.is_empty());
            from_item(at.clone(), &parse_item_xml(&at, xml)?, id)
        })
        .collect()
}

fn read_xml(text: &str) -> Vec<Result<Record, String>> {
    let body = text.trim_start_matches('\u{feff}').trim();
    // The document around the items, and each item, are two levels more.
    if let Err(e) = proto::check_depth(body, proto::MAX_PAYLOAD_DEPTH + 2) {
        return vec![Err(e)];
    }
    let root: Element = match body.parse() {
        Ok(r) => r,
        Err(e) => return vec![Err(format!("not one XML document ({e})"))],
    };
    if root.name() != "items" || root.ns() != export::NS_EXPORT {
        return vec![Err(format!(
            "the root element is <{}>; an export's is <items xmlns='{}'>",
            root.name(),
            export::NS_EXPORT
        ))];
    }
    root.children()
        .enumerate()
        .map(|(n, item)| from_item(format!("item {}", n + 1), item, None))
        .collect()
}

/// Read and check the whole file: its records, or every problem found (up to a bound).
pub fn read_file(path: &Path, format: Option<Format>) -> anyhow::Result<Vec<Record>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let len = file.metadata().map_or(0, |m| m.len());
    if len > MAX_FILE_BYTES {
        bail!(
            "{}: {len} bytes; import reads at most 1 GiB",
            path.display()
        );
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE_BYTES), &mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text ({e})", path.display()))?;
    let format = format
        .or_else(|| Format::of_path(path))
        .or_else(|| {
            match text
                .trim_start_matches('\u{feff}')
                .trim_start()
                .chars()
                .next()
            {
                Some('{') => Some(Format::Ndjson),
                Some('<') => Some(Format::Xml),
                _ => None,
            }
        })
        .unwrap_or(Format::Csv);
    let results = match format {
        Format::Ndjson => read_ndjson(&text),
        Format::Csv => read_csv(&text),
        Format::Xml => read_xml(&text),
    };
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if !errors.is_empty() {
        let mut why = errors
            .iter()
            .take(MAX_ERRORS_SHOWN)
            .map(|e| format!("  {e}"))
            .collect::<Vec<_>>()
            .join("\n");
        if errors.len() > MAX_ERRORS_SHOWN {
            let _ = write!(why, "\n  … and {} more", errors.len() - MAX_ERRORS_SHOWN);
        }
        bail!(
            "{} ({} file): {} bad record(s), nothing was published:\n{why}",
            path.display(),
            format.extension(),
            errors.len()
        );
    }
    if results.is_empty() {
        bail!(
            "{}: no items in it (an export has one per line, or one per <item/>)",
            path.display()
        );
    }
    Ok(results.into_iter().filter_map(Result::ok).collect())
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub published: usize,
    pub skipped: usize,
    pub failed: Vec<String>,
}

/// `pubsub-tui import --node N FILE`.
pub async fn import(
    settings: Settings,
    node: &str,
    records: Vec<Record>,
) -> anyhow::Result<Outcome> {
    let service = settings.session.service.clone();
    let key = NodeKey::new(&service, node.to_owned());
    let (mut net, _) = super::connect_once(settings).await?;
    let result = run(&mut net, &key, node, service.as_str(), records).await;
    super::close(net).await;
    result
}

async fn run(
    net: &mut crate::xmpp::NetHandle,
    key: &NodeKey,
    node: &str,
    service: &str,
    records: Vec<Record>,
) -> anyhow::Result<Outcome> {
    // What the node has: id → payload.
    let have: HashMap<String, Option<String>> = match net
        .request(
            |req| Command::Items {
                req,
                node: key.clone(),
                max: None,
            },
            drop,
        )
        .await
    {
        Ok(Answer::Items { items, .. }) => items
            .into_iter()
            .filter_map(|i| {
                // Only what is kept whole can be compared.
                Some((
                    i.id().map(str::to_owned)?,
                    i.tree().payload_xml().filter(|_| i.tree().is_whole()),
                ))
            })
            .collect(),
        Ok(other) => bail!("unexpected answer: {other:?}"),
        Err(e) if e.condition() == Some(Condition::ItemNotFound) => HashMap::new(),
        Err(e) => bail!(explain(&e, Op::Retrieve, node, service)),
    };
    let mut out = Outcome::default();
    let mut todo = Vec::new();
    for r in records {
        let same =
            r.id.as_ref()
                .and_then(|id| have.get(id))
                .is_some_and(|p| p.is_some() && *p == r.canonical());
        if same {
            out.skipped += 1;
        } else {
            todo.push(r);
        }
    }
    let started = Instant::now();
    let mut queue = todo.into_iter();
    let mut flying: HashMap<crate::xmpp::RequestId, String> = HashMap::new();
    loop {
        while flying.len() < IN_FLIGHT
            && let Some(r) = queue.next()
        {
            let req = net.ids.fresh();
            let item = proto::item::item_with(r.id.as_deref(), r.payload);
            let cmd = Command::PublishItem {
                req,
                node: key.clone(),
                item,
                options: Vec::new(),
            };
            if net.commands.send(cmd).await.is_err() {
                bail!("the connection ended during the import");
            }
            flying.insert(req, r.at);
        }
        if flying.is_empty() {
            break;
        }
        match net.events.recv().await {
            Some(NetEvent::Reply { req, result }) => {
                let Some(at) = flying.remove(&req) else {
                    continue;
                };
                match result {
                    Ok(_) => out.published += 1,
                    Err(e) => out
                        .failed
                        .push(format!("{at}: {}", explain(&e, Op::Publish, node, service))),
                }
            }
            Some(_) => {}
            None => bail!("the connection ended during the import"),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(published = out.published, secs, "import done");
    Ok(out)
}
