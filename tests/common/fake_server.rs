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
    let mark = buf.len();
    read_until(sock, &mut buf, mark, "subscribe").await;
}

pub fn event(item: &str) -> String {
    format!(
        "<message from='pubsub.localhost' to='alice@localhost/tui' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'>{item}</items></event></message>"
    )
}
