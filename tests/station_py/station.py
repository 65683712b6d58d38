"""A police station written without the gatehouse code: proves a second
implementation can sign commands the gateway obeys and check the gateway's
signed replies, from the documented wire format alone (README "Commands").

Signed bytes: the context line ("gatehouse-command-v1\\n" for commands,
"gatehouse-reply-v1\\n" for replies) followed by the RFC 8785 (JCS) canonical
JSON of the object without its "signature" field; Ed25519; base64 signature.

    station.py keygen KEYFILE                  # writes a seed, prints the public key
    station.py send --broker HOST:PORT --key KEYFILE --officer ID --site S
        --gateway G --gateway-key B64 [--tamper] COMMAND ARGS_JSON

`send` prints the gateway's reply (JSON) on stdout and exits 0 when its
signature verifies with --gateway-key, 3 when it does not, 2 on no reply.
With --tamper, one byte of the signed payload is changed before it is sent.
"""

import argparse
import base64
import datetime
import json
import os
import sys
import threading
import uuid

import nacl.exceptions
import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import rfc8785

COMMAND_CONTEXT = b"gatehouse-command-v1\n"
REPLY_CONTEXT = b"gatehouse-reply-v1\n"


def signing_bytes(context, obj):
    unsigned = {k: v for k, v in obj.items() if k != "signature"}
    return context + rfc8785.dumps(unsigned)


def rfc3339(t):
    return t.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def keygen(path):
    key = nacl.signing.SigningKey.generate()
    with open(path, "w") as f:
        f.write(key.encode().hex() + "\n")
    print(base64.b64encode(key.verify_key.encode()).decode())


def load_key(path):
    with open(path) as f:
        return nacl.signing.SigningKey(bytes.fromhex(f.read().strip()))


def signed_command(key, officer, site, gateway, command, args):
    now = datetime.datetime.now(datetime.timezone.utc)
    cmd = {
        "command": command,
        "args": args,
        "site": site,
        "gateway": gateway,
        "officer": officer,
        "issued_at": rfc3339(now),
        "expires_at": rfc3339(now + datetime.timedelta(minutes=5)),
        "nonce": os.urandom(16).hex(),
    }
    sig = key.sign(signing_bytes(COMMAND_CONTEXT, cmd)).signature
    cmd["signature"] = base64.b64encode(sig).decode()
    return cmd


def tamper(payload):
    """Changes one byte inside the officer id (the JSON stays valid)."""
    at = payload.index(b'"officer":"') + len(b'"officer":"')
    changed = bytearray(payload)
    changed[at] = ord("X") if changed[at] != ord("X") else ord("Y")
    return bytes(changed)


def verify_reply(reply, gateway_key):
    try:
        sig = base64.b64decode(reply["signature"])
        nacl.signing.VerifyKey(base64.b64decode(gateway_key)).verify(
            signing_bytes(REPLY_CONTEXT, reply), sig
        )
        return True
    except (KeyError, TypeError, ValueError, nacl.exceptions.CryptoError):
        return False


def send(a):
    cmd = signed_command(load_key(a.key), a.officer, a.site, a.gateway, a.command, json.loads(a.args))
    payload = json.dumps(cmd, ensure_ascii=False, separators=(",", ":")).encode()
    if a.tamper:
        payload = tamper(payload)
    host, port = a.broker.rsplit(":", 1)
    reply_topic = "gatehouse-station/py/" + uuid.uuid4().hex
    correlation = os.urandom(8)
    got = {}
    status_topic = f"gatehouse/v1/{a.site}/{a.gateway}/status"
    done = threading.Event()
    subscribed = threading.Event()
    online = threading.Event()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

    def on_connect(c, _userdata, _flags, reason, _props):
        if reason.is_failure:
            print(f"station: broker refused the connection: {reason}", file=sys.stderr)
            done.set()
            return
        # The retained status says whether the gateway is listening: it
        # subscribes to its commands before it publishes "online".
        c.subscribe([(reply_topic, 1), (status_topic, 1)])

    def on_subscribe(_c, _userdata, _mid, _reasons, _props):
        subscribed.set()

    def on_message(_c, _userdata, msg):
        if msg.topic == status_topic:
            try:
                if json.loads(msg.payload).get("state") == "online":
                    online.set()
            except ValueError:
                pass
            return
        props = getattr(msg, "properties", None)
        if getattr(props, "CorrelationData", None) == correlation:
            got["reply"] = msg.payload
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, int(port))
    client.loop_start()
    try:
        if not subscribed.wait(10):
            print("station: no subscription to the reply topic", file=sys.stderr)
            return 2
        if not online.wait(a.timeout):
            print(f"station: {a.site}/{a.gateway} is not online", file=sys.stderr)
            return 2
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation
        topic = f"gatehouse/v1/{a.site}/{a.gateway}/cmd/{a.command}"
        client.publish(topic, payload, qos=1, properties=props)
        if not done.wait(a.timeout) or "reply" not in got:
            print(f"station: no reply on {reply_topic} within {a.timeout} s", file=sys.stderr)
            return 2
    finally:
        client.loop_stop()
        client.disconnect()
    reply = json.loads(got["reply"])
    print(json.dumps(reply, ensure_ascii=False))
    if not verify_reply(reply, a.gateway_key):
        print("station: the reply's signature does not verify with the gateway key", file=sys.stderr)
        return 3
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("keyfile")
    s = sub.add_parser("send")
    s.add_argument("--broker", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--officer", required=True)
    s.add_argument("--site", required=True)
    s.add_argument("--gateway", required=True)
    s.add_argument("--gateway-key", required=True)
    s.add_argument("--tamper", action="store_true")
    s.add_argument("--timeout", type=float, default=20.0)
    s.add_argument("command")
    s.add_argument("args")
    a = p.parse_args()
    if a.what == "keygen":
        keygen(a.keyfile)
        return 0
    return send(a)


if __name__ == "__main__":
    sys.exit(main())
