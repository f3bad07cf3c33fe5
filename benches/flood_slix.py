"""A slixmpp subscriber for the flood bench (benches/flood.rs): the comparison peer.

It does what a small slixmpp client that follows a node does: logs in over plain TCP on
loopback, sends presence, subscribes to the node with XEP-0060, and handles every
notification through slixmpp's pubsub plugin (the items parsed into stanza objects). It
counts the items and prints one line for the bench at each step:

    ready          subscribed
    warm           the warm-up item arrived (the bench starts measuring after it)
    done N         N flood items arrived after the warm-up

Usage: flood_slix.py JID PASSWORD_FILE HOST PORT SERVICE NODE COUNT
"""

import sys

import slixmpp


class Subscriber(slixmpp.ClientXMPP):
    def __init__(self, jid, password, service, node, count):
        super().__init__(jid, password)
        self.service = service
        self.node = node
        self.count = count
        self.seen = 0
        self.warm = False
        self.register_plugin("xep_0060")
        self.pubsub = self.plugin["xep_0060"]
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("pubsub_publish", self.item)

    async def start(self, _event):
        self.send_presence()
        await self.pubsub.subscribe(self.service, self.node)
        say("ready")

    def item(self, msg):
        payload = msg["pubsub_event"]["items"]["item"]["payload"]
        text = payload.text if payload is not None else ""
        if not self.warm:
            if text == "warm-up":
                self.warm = True
                say("warm")
            return
        self.seen += 1
        if self.seen == self.count:
            say(f"done {self.seen}")


def say(line):
    print(line, flush=True)


def main():
    jid, password_file, host, port, service, node, count = sys.argv[1:8]
    with open(password_file, encoding="utf-8") as f:
        password = f.read().strip()
    xmpp = Subscriber(jid, password, service, node, int(count))
    xmpp.register_plugin("feature_mechanisms")
    # Plain TCP on loopback, as the other subscribers (the server offers SCRAM there).
    xmpp.enable_direct_tls = False
    xmpp.enable_starttls = False
    xmpp.enable_plaintext = True
    xmpp.plugin["feature_mechanisms"].unencrypted_scram = True
    xmpp.plugin["feature_mechanisms"].unencrypted_plain = True
    xmpp.connect(host=host, port=int(port))
    xmpp.loop.run_forever()


if __name__ == "__main__":
    main()
