//! A scripted fake XMPP server, for what a real one will not send (hostile stanzas): just
//! enough of the login (SASL PLAIN, bind) for our client to come online.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='fake' from='localhost' version='1.0'>";

/// Read until `needle` appears after `from`; returns the text read so far.
pub async fn read_until(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
    from: usize,
    needle: &str,
) -> String {
    loop {
        let text = String::from_utf8_lossy(&buf[from.min(buf.len())..]).into_owned();
        if let Some(i) = text.find(needle) {
            return text[..i + needle.len()].to_owned();
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk))
            .await
            .expect("client talks in time")
            .expect("read");
        assert!(n > 0, "client closed while waiting for {needle:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Play the server side of login (PLAIN, bind) and return once the client has subscribed.
pub async fn login(sock: &mut TcpStream) {
    let mut buf = login_bound(sock).await;
    let mark = buf.len();
    read_until(sock, &mut buf, mark, "subscribe").await;
}

/// Play the server side of login (PLAIN, bind); return what was read, once the client is
/// bound.
pub async fn login_bound(sock: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    read_until(sock, &mut buf, 0, "<stream:stream").await;
    read_until(sock, &mut buf, 0, ">").await;
    sock.write_all(format!("{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>").as_bytes()).await.expect("write");
    read_until(sock, &mut buf, 0, "</auth>").await;
    let mark = buf.len();
    sock.write_all(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .expect("write");
    read_until(sock, &mut buf, mark, "<stream:stream").await;
    sock.write_all(format!("{HEADER}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>").as_bytes()).await.expect("write");
    let mark = buf.len();
    let bind = read_until(sock, &mut buf, mark, "</iq>").await;
    let id_start = bind.find("id=").expect("bind has an id") + 4;
    let quote = bind.as_bytes()[id_start - 1] as char;
    let id_len = bind[id_start..].find(quote).expect("id ends");
    let id = &bind[id_start..id_start + id_len];
    sock.write_all(format!("<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/tui</jid></bind></iq>").as_bytes()).await.expect("write");
    buf
}

/// The value of attribute `name` in the first tag of `xml` that has it.
pub fn attr(xml: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let key = format!(" {name}={quote}");
        if let Some(i) = xml.find(&key) {
            let rest = &xml[i + key.len()..];
            return rest.find(quote).map(|end| rest[..end].to_owned());
        }
    }
    None
}

/// After [`login_bound`]: answer each IQ the client sends with `answer(iq)` (the IQ's text;
/// the reply is given the IQ's id), until the client goes away.
pub async fn serve_iqs(sock: &mut TcpStream, mut buf: Vec<u8>, answer: impl Fn(&str) -> String) {
    let mut mark = buf.len();
    loop {
        let text = {
            let mut chunk = [0u8; 4096];
            loop {
                let seen = String::from_utf8_lossy(&buf[mark..]).into_owned();
                if seen.contains("</iq>") || seen.contains("</stream:stream>") {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(30), sock.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            String::from_utf8_lossy(&buf[mark..]).into_owned()
        };
        let Some(end) = text.find("</iq>") else {
            return;
        };
        let start = text[..end].rfind("<iq").expect("an iq");
        let iq = &text[start..end + 5];
        mark += text[..end + 5].len();
        let id = attr(iq, "id").expect("iq id");
        let reply = answer(iq).replace("ID", &id);
        if sock.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

pub fn event(item: &str) -> String {
    format!(
        "<message from='pubsub.localhost' to='alice@localhost/tui' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'>{item}</items></event></message>"
    )
}
