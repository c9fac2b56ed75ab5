"""The page's own behaviour against a controller on loopback (no lab): the files'
headers, the sign-in form (a bad token is refused and the form comes back), and the
parsers that take untrusted input (pasted credentials, the event stream) in the
browser, where they run."""

import json
import ssl
import urllib.request

from api import Api


def fetch_headers(port, path, ca):
    ctx = ssl.create_default_context(cadata=ca)
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}


def test_files_headers_sign_in_and_parsers(controller, page_factory):
    port, cred = controller
    for path, ctype in (
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ):
        status, h = fetch_headers(port, path, cred["ca"])
        assert status == 200
        assert h["content-type"] == ctype, path
        assert h["content-security-policy"].startswith("default-src 'self'")
        assert h["etag"].startswith('"')

    admin = Api(port, cred["ca"], cred["token"])
    admin.post("/v1/domains", {"name": "d1"})
    viewer = admin.post("/v1/credentials", {"role": "viewer"})["token"]
    admin.close()

    p = page_factory(f"https://127.0.0.1:{port}")
    page = p.page
    # An unknown token: the controller says 401, the form comes back with why.
    p.sign_in("mcg_000000000000_" + "0" * 64)
    page.wait_for_selector("#login-error:not(:empty)")
    assert page.is_visible("#login")
    assert page.evaluate("sessionStorage.getItem('mcgate.token')") is None
    # Not a token at all: refused before any request.
    page.fill("#token", "two words")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:text-is('no token in what was pasted')")
    # A credential file: its token is kept; the domain opens live.
    page.fill("#token", json.dumps({"controller": "x", "token": viewer, "role": "viewer"}))
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#status[data-state='live']")
    assert page.evaluate("sessionStorage.getItem('mcgate.token')") == viewer
    # The token stays in the tab across a reload, and "forget" drops it.
    page.reload()
    page.wait_for_selector("#status[data-state='live']")
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('mcgate.token')") is None

    parsed = page.evaluate(
        """async () => {
            const { parseEvents } = await import('./sse.js');
            const { parseToken } = await import('./api.js');
            // An event split anywhere, CRLF lines, a comment, two data lines, no data.
            const [a, restA] = parseEvents('event: traffic\\r\\ndata: {"x"');
            const [b, restB] = parseEvents(restA + ':1}\\r\\n\\r\\n: keepalive\\n\\nevent: e\\n\\ndata: 1\\ndata: 2\\n\\nev');
            return {
                a, b, restB,
                tokens: [parseToken('  tok  '), parseToken('{"token": " t "}'), parseToken('{"token": 5}'),
                         parseToken('{not json'), parseToken(''), parseToken('a b'), parseToken(null)],
            };
        }"""
    )
    assert parsed["a"] == []
    assert parsed["b"] == [
        {"name": "traffic", "data": '{"x":1}'},
        {"name": "message", "data": "1\n2"},
    ]
    assert parsed["restB"] == "ev"
    assert parsed["tokens"] == ["tok", "t", None, None, None, None, None]
    assert p.errors == [e for e in p.errors if "401" in e], p.errors
