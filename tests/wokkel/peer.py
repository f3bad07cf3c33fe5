"""The seed-era peer, in Python with Twisted and Wokkel, as an independent interop partner.

Two roles, like the original example:

  peer.py client JID PASSWORD PORT SERVICE NODE
      Subscribe (with the full JID) to NODE at SERVICE, then publish an attribute-only item
      (sender, time, message; no id, no payload) every second. Every item received is
      printed as one JSON line {"kind": "item", "sender", "message", "time"}.

  peer.py relay JID PASSWORD PORT
      The original relay service: accepts every subscription, forwards each published item
      verbatim to every subscriber, keeps nothing and cannot retrieve items.

Both connect to 127.0.0.1:PORT over plain TCP (a private test server) and print
{"kind": "ready"} once they are set up. The password is read from the file PASSWORD.
"""

import json
import sys
import time

# Wokkel 18 predates the removal of this name from Twisted (STACK-NOTES section 4).
import twisted.python.compat

twisted.python.compat._PY3 = True

from twisted.internet import defer, reactor, task  # noqa: E402
from twisted.words.protocols.jabber import xmlstream  # noqa: E402
from twisted.words.protocols.jabber.jid import JID  # noqa: E402
from twisted.words.xish import domish  # noqa: E402
from wokkel import client, pubsub  # noqa: E402


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# Plain TCP on loopback: the private test server offers no STARTTLS.
_associate = client.HybridAuthenticator.associateWithStream


def _associate_without_tls(self, xs):
    _associate(self, xs)
    for init in xs.initializers:
        if isinstance(init, xmlstream.TLSInitiatingInitializer):
            init.required = False


client.HybridAuthenticator.associateWithStream = _associate_without_tls


class Client(pubsub.PubSubClient):
    def __init__(self, me, service, node):
        pubsub.PubSubClient.__init__(self)
        self.me, self.service, self.node = me, service, node
        self.count = 0

    def connectionInitialized(self):
        pubsub.PubSubClient.connectionInitialized(self)
        self.send("<presence/>")
        d = self.subscribe(self.service, self.node, self.me)
        d.addCallback(self.subscribed)
        d.addErrback(lambda f: say({"kind": "error", "what": "subscribe", "error": str(f.value)}))

    def subscribed(self, _):
        say({"kind": "ready"})
        task.LoopingCall(self.publish_one).start(1.0)

    def publish_one(self):
        self.count += 1
        item = pubsub.Item()
        item["sender"] = self.me.full()
        item["time"] = time.strftime("%H:%M:%S")
        item["message"] = "wokkel says %d" % self.count
        d = self.publish(self.service, self.node, [item])
        d.addErrback(lambda f: say({"kind": "error", "what": "publish", "error": str(f.value)}))

    def itemsReceived(self, event):
        for item in event.items:
            if item.name != "item":
                continue
            say(
                {
                    "kind": "item",
                    "sender": item.getAttribute("sender"),
                    "message": item.getAttribute("message"),
                    "time": item.getAttribute("time"),
                }
            )


class Relay(pubsub.PubSubResource):
    """Accept everything, keep nothing, forward verbatim (as the original did)."""

    features = ["publish", "subscribe"]

    def __init__(self):
        self.subscribers = set()

    def subscribe(self, request):
        self.subscribers.add(request.subscriber)
        return defer.succeed(
            pubsub.Subscription(request.nodeIdentifier, request.subscriber, "subscribed")
        )

    def publish(self, request):
        notifications = [(s, [], request.items) for s in self.subscribers]
        self.pubsubService.notifyPublish(request.recipient, request.nodeIdentifier, notifications)
        return defer.succeed(None)


class RelayService(pubsub.PubSubService):
    def connectionInitialized(self):
        pubsub.PubSubService.connectionInitialized(self)
        self.send("<presence/>")
        say({"kind": "ready"})


def main():
    role, jid, password_file, port = sys.argv[1:5]
    with open(password_file) as f:
        password = f.readline().strip()
    me = JID(jid)
    xmpp = client.XMPPClient(me, password, host="127.0.0.1", port=int(port))
    if role == "client":
        service, node = JID(sys.argv[5]), sys.argv[6]
        Client(me, service, node).setHandlerParent(xmpp)
    elif role == "relay":
        resource = Relay()
        svc = RelayService(resource)
        resource.pubsubService = svc
        svc.setHandlerParent(xmpp)
    else:
        sys.exit("unknown role %r" % role)
    xmpp.startService()
    reactor.run()


if __name__ == "__main__":
    main()
