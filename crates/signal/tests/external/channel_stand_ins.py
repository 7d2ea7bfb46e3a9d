"""Local stand-ins for what notification channels talk to, written against other people's code so
that they check ours: a Standard Webhooks receiver (the specification's own `standardwebhooks`
package verifies every signature), a web push service (RFC 8030 POSTs; the VAPID JWT checked with
`cryptography`, the payload decrypted with `http_ece`, the web-push libraries' reference), a
Telegram Bot API server, and an SMTP sink (`aiosmtpd`).

    python channel_stand_ins.py webhook|push|telegram|smtp [--host 127.0.0.1] [--fail-rate 0.3]

Prints one line, `READY {"http": PORT, "smtp": PORT}`, once listening. Each serves
`GET /_control/state` (what it received, as JSON) and `POST /_control/<action>` to steer it.
It exits when its standard input closes, so it never outlives the test that started it.
"""

import argparse
import base64
import json
import random
import sys
import threading
import time
import uuid
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class StandIn:
    """State shared by the request threads."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Condition()

    def state(self):
        raise NotImplementedError

    def control(self, action, body):
        raise NotImplementedError(action)

    def handle(self, handler, method, path, body):
        raise NotImplementedError(path)


class Handler(BaseHTTPRequestHandler):
    stand_in = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None, content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def serve(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlparse(self.path).path
        if path == "/_control/state":
            with self.stand_in.lock:
                return self.reply(200, self.stand_in.state())
        if path.startswith("/_control/"):
            request = json.loads(body or b"{}")
            with self.stand_in.lock:
                answer = self.stand_in.control(path[len("/_control/"):], request)
                self.stand_in.lock.notify_all()
            return self.reply(200, answer or {})
        return self.stand_in.handle(self, method, path, body)

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")


class WebhookReceiver(StandIn):
    """Accepts each webhook-id once, as the specification asks receivers to; verifies every
    signature with the endpoint's secret (set by the test per path); fails a share of requests."""

    def __init__(self, args):
        super().__init__(args)
        self.secrets = {}
        self.accepted = {}
        self.duplicates = []
        self.failed = []
        self.invalid = []
        self.requests = 0
        self.gone = set()
        self.retry_after = {}

    def state(self):
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "invalid": self.invalid,
            "requests": self.requests,
        }

    def control(self, action, body):
        if action == "secret":
            self.secrets[body["path"]] = body["secret"]
        elif action == "gone":
            self.gone.add(body["path"])
        elif action == "retry-after":
            self.retry_after[body["path"]] = [body["count"], body["seconds"]]
        else:
            raise ValueError(action)

    def handle(self, handler, method, path, body):
        import standardwebhooks

        query = parse_qs(urlparse(handler.path).query)
        if path == "/redirect" and "to" in query:
            with self.lock:
                self.requests += 1
            return handler.reply(307, headers={"Location": query["to"][0]})
        headers = {k.lower(): v for k, v in handler.headers.items()}
        message_id = headers.get("webhook-id")
        with self.lock:
            self.requests += 1
            secret = self.secrets.get(path)
            if path in self.gone:
                return handler.reply(410, {"error": "gone"})
            if secret is None:
                self.invalid.append({"path": path, "reason": "no secret for this path"})
                return handler.reply(401, {"error": "unknown endpoint"})
        try:
            standardwebhooks.Webhook(secret).verify(body, headers)
        except Exception as error:
            with self.lock:
                self.invalid.append({"path": path, "id": message_id, "reason": str(error)})
            return handler.reply(401, {"error": "bad signature"})
        with self.lock:
            pending = self.retry_after.get(path)
            if pending and pending[0] > 0:
                pending[0] -= 1
                self.failed.append({"id": message_id, "at": time.time(), "status": 429, "peer": handler.client_address[1]})
                return handler.reply(429, {"error": "slow down"}, {"Retry-After": str(pending[1])})
            if random.random() < self.args.fail_rate:
                self.failed.append({"id": message_id, "at": time.time(), "status": 500})
                return handler.reply(500, {"error": "injected failure"})
            if message_id in self.accepted:
                self.duplicates.append(message_id)
            else:
                self.accepted[message_id] = {
                    "path": path,
                    "at": time.time(),
                    "peer": handler.client_address[1],
                    "timestamp": headers.get("webhook-timestamp"),
                    "contentType": headers.get("content-type"),
                    "body": body.decode(),
                }
        return handler.reply(204)


class PushService(StandIn):
    """A push service for subscriptions it makes itself: checks the VAPID JWT (RFC 8292) against
    the server key the test names, and decrypts the aes128gcm payload (RFC 8291) with the
    subscription's private key."""

    def __init__(self, args):
        super().__init__(args)
        self.subscriptions = {}
        self.expected_key = None
        self.messages = []
        self.rejected = []
        self.port = None

    def state(self):
        return {"messages": self.messages, "rejected": self.rejected}

    def control(self, action, body):
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives import serialization

        if action == "subscribe":
            key = ec.generate_private_key(ec.SECP256R1())
            auth = uuid.uuid4().bytes
            sid = uuid.uuid4().hex
            public = key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            self.subscriptions[sid] = {"key": key, "auth": auth, "gone": False}
            return {
                "endpoint": f"http://{self.args.host}:{self.port}/push/{sid}",
                "keys": {"p256dh": b64url_encode(public), "auth": b64url_encode(auth)},
            }
        if action == "vapid":
            self.expected_key = body["publicKey"]
            return None
        if action == "expire":
            self.subscriptions[body["id"]]["gone"] = True
            return None
        raise ValueError(action)

    def check_vapid(self, authorization):
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        if not authorization.startswith("vapid "):
            return "Authorization is not `vapid t=..., k=...`"
        fields = dict(part.strip().split("=", 1) for part in authorization[6:].split(","))
        token, key = fields.get("t"), fields.get("k")
        if not token or not key:
            return "t or k missing"
        if key != self.expected_key:
            return "k is not the server's VAPID key"
        header, claims, signature = token.split(".")
        if json.loads(b64url_decode(header)).get("alg") != "ES256":
            return "the JWT is not ES256"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
        raw = b64url_decode(signature)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        try:
            public.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "the JWT signature does not verify"
        claims = json.loads(b64url_decode(claims))
        audience = f"http://{self.args.host}:{self.port}"
        if claims.get("aud") != audience:
            return f"aud is {claims.get('aud')!r}, not {audience!r}"
        now = time.time()
        if not (now < claims.get("exp", 0) <= now + 24 * 3600 + 60):
            return "exp is not within the next 24 hours"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:", "http:")):
            return "sub is not a mailto: or https: contact"
        return None

    def handle(self, handler, method, path, body):
        import http_ece
        from cryptography.hazmat.primitives.asymmetric import ec

        if not path.startswith("/push/"):
            return handler.reply(404, {"error": "no such path"})
        sid = path[len("/push/"):]
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            subscription = self.subscriptions.get(sid)
            if subscription is None or subscription["gone"]:
                return handler.reply(410, {"error": "subscription expired"})
            problem = None
            if headers.get("content-encoding") != "aes128gcm":
                problem = "Content-Encoding is not aes128gcm"
            elif "ttl" not in headers:
                problem = "no TTL header"
            else:
                problem = self.check_vapid(headers.get("authorization", ""))
            if problem is None:
                try:
                    plaintext = http_ece.decrypt(
                        body,
                        private_key=subscription["key"],
                        auth_secret=subscription["auth"],
                        version="aes128gcm",
                    )
                except Exception as error:
                    problem = f"the payload does not decrypt: {error}"
            if problem is not None:
                self.rejected.append({"subscription": sid, "reason": problem})
                return handler.reply(400, {"error": problem})
            self.messages.append(
                {
                    "subscription": sid,
                    "ttl": headers.get("ttl"),
                    "urgency": headers.get("urgency"),
                    "payload": json.loads(plaintext),
                }
            )
        return handler.reply(201, headers={"Location": f"/message/{uuid.uuid4().hex}"})


class TelegramBotApi(StandIn):
    """The parts of the Telegram Bot API the system uses, for one bot token."""

    def __init__(self, args):
        super().__init__(args)
        self.token = args.token
        self.updates = []
        self.next_update = 1
        self.sent = []
        self.refused = []
        self.limited = {}
        self.blocked = set()

    def state(self):
        return {"sent": self.sent, "refused": self.refused}

    def control(self, action, body):
        if action == "send":
            # A user writes to the bot.
            self.updates.append(
                {
                    "update_id": self.next_update,
                    "message": {
                        "message_id": self.next_update,
                        "from": {
                            "id": body["chat_id"],
                            "is_bot": False,
                            "first_name": "Test",
                            "language_code": body.get("language_code", "en"),
                        },
                        "chat": {"id": body["chat_id"], "type": "private", "first_name": "Test"},
                        "date": int(time.time()),
                        "text": body["text"],
                    },
                }
            )
            self.next_update += 1
        elif action == "rate-limit":
            self.limited[body["chat_id"]] = [body["count"], body["retry_after"]]
        elif action == "block":
            self.blocked.add(body["chat_id"])
        else:
            raise ValueError(action)

    def answer(self, handler, status, description, parameters=None):
        body = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return handler.reply(status, body)

    def handle(self, handler, method, path, body):
        prefix = f"/bot{self.token}/"
        if not path.startswith(prefix):
            return self.answer(handler, 401, "Unauthorized")
        method_name = path[len(prefix):]
        request = json.loads(body or b"{}")
        if method_name == "getMe":
            return handler.reply(
                200,
                {"ok": True, "result": {"id": 777, "is_bot": True, "first_name": "Signal", "username": "signal_test_bot"}},
            )
        if method_name == "getUpdates":
            offset = request.get("offset", 0)
            deadline = time.time() + min(float(request.get("timeout", 0)), 2.0)
            with self.lock:
                while True:
                    ready = [u for u in self.updates if u["update_id"] >= offset]
                    if ready or time.time() >= deadline:
                        break
                    self.lock.wait(deadline - time.time())
            return handler.reply(200, {"ok": True, "result": ready})
        if method_name == "sendMessage":
            chat = request.get("chat_id")
            with self.lock:
                if chat in self.blocked:
                    self.refused.append({"chat_id": chat, "status": 403, "at": time.time()})
                    return self.answer(handler, 403, "Forbidden: bot was blocked by the user")
                limit = self.limited.get(chat)
                if limit and limit[0] > 0:
                    limit[0] -= 1
                    self.refused.append({"chat_id": chat, "status": 429, "at": time.time()})
                    return self.answer(
                        handler, 429, f"Too Many Requests: retry after {limit[1]}", {"retry_after": limit[1]}
                    )
                message_id = len(self.sent) + 1
                self.sent.append(
                    {
                        "chat_id": chat,
                        "text": request.get("text"),
                        "parse_mode": request.get("parse_mode"),
                        "at": time.time(),
                    }
                )
            return handler.reply(
                200,
                {"ok": True, "result": {"message_id": message_id, "date": int(time.time()), "chat": {"id": chat, "type": "private"}, "text": request.get("text")}},
            )
        return self.answer(handler, 404, "Not Found: method not found")


class SmtpSink(StandIn):
    """Keeps every mail; refuses the recipients the test names with 550."""

    def __init__(self, args):
        super().__init__(args)
        self.messages = []
        self.refused_recipients = set()

    def state(self):
        return {"messages": self.messages}

    def control(self, action, body):
        if action == "refuse":
            self.refused_recipients.add(body["address"].lower())
        else:
            raise ValueError(action)

    def handle(self, handler, method, path, body):
        return handler.reply(404, {"error": "SMTP only"})

    def start_smtp(self):
        from aiosmtpd.controller import Controller

        sink = self

        class Receiver:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                with sink.lock:
                    if address.lower() in sink.refused_recipients:
                        return "550 5.1.1 mailbox unavailable"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                mail = BytesParser(policy=policy.default).parsebytes(envelope.content)
                parts = {}
                for part in mail.walk():
                    if part.get_content_maintype() == "text":
                        parts[part.get_content_type()] = part.get_content()
                with sink.lock:
                    sink.messages.append(
                        {
                            "from": envelope.mail_from,
                            "to": envelope.rcpt_tos,
                            "subject": str(mail["Subject"]),
                            "messageId": str(mail["Message-ID"]),
                            "text": parts.get("text/plain"),
                            "html": parts.get("text/html"),
                            "at": time.time(),
                        }
                    )
                return "250 Message accepted"

        # aiosmtpd checks that it listens by connecting to its port, so it needs a real one.
        import socket

        with socket.socket() as probe:
            probe.bind((self.args.host, 0))
            port = probe.getsockname()[1]
        controller = Controller(Receiver(), hostname=self.args.host, port=port)
        controller.start()
        return port


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up mid-answer (a long poll cut short by a stopping test) is normal.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["webhook", "push", "telegram", "smtp"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--token", default="123456:TEST-TOKEN")
    args = parser.parse_args()
    stand_in = {
        "webhook": WebhookReceiver,
        "push": PushService,
        "telegram": TelegramBotApi,
        "smtp": SmtpSink,
    }[args.kind](args)
    Handler.stand_in = stand_in
    server = Server((args.host, 0), Handler)
    ports = {"http": server.server_address[1]}
    stand_in.port = ports["http"]
    if args.kind == "smtp":
        ports["smtp"] = stand_in.start_smtp()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("READY " + json.dumps(ports), flush=True)
    # Exit with the test: it holds our standard input open while it runs.
    sys.stdin.read()


if __name__ == "__main__":
    main()
