"""A small client of the controller's API over TLS with a bearer token (the standard
library only), for the tests' synthetic agents."""

import http.client
import json
import ssl


class Api:
    def __init__(self, port, ca_pem, token):
        ctx = ssl.create_default_context(cadata=ca_pem)
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        self.token = token

    def call(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        text = r.read()
        if r.status >= 300:
            raise AssertionError(f"{method} {path}: {r.status} {text[:300]!r}")
        return json.loads(text) if text else None

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body):
        return self.call("POST", path, body)

    def close(self):
        self.conn.close()
