"""Every operation of the controller's OpenAPI document that declares the bearer
scheme answers 401 (with an ApiError body and `WWW-Authenticate: Bearer`) to a request
without a credential, and documents that 401; the public ones declare `security: []`.

Usage: python3 unauthenticated.py OPENAPI.json URL CA.pem
"""

import json
import ssl
import sys
import urllib.error
import urllib.request


def main(doc_path, url, ca):
    doc = json.load(open(doc_path))
    ctx = ssl.create_default_context(cafile=ca)
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if op.get("security", doc.get("security")) == [{}]:
                continue
            if "401" not in op["responses"]:
                sys.exit(f"{method.upper()} {path}: no 401 documented")
            concrete = (path.replace("{name}", "d1").replace("{host}", "h1")
                        .replace("{id}", "000000000000"))
            req = urllib.request.Request(url + concrete, method=method.upper(), data=b"{}",
                                         headers={"content-type": "application/json"})
            try:
                urllib.request.urlopen(req, context=ctx, timeout=10)
                sys.exit(f"{method.upper()} {path}: accepted without a credential")
            except urllib.error.HTTPError as e:
                body = json.loads(e.read() or b"{}")
                if e.code != 401 or "error" not in body:
                    sys.exit(f"{method.upper()} {path}: {e.code} {body}")
                if e.headers.get("www-authenticate") != "Bearer":
                    sys.exit(f"{method.upper()} {path}: no WWW-Authenticate: Bearer")
            checked += 1
    print(f"    ok: {checked} operations refuse a request without a credential")


if __name__ == "__main__":
    main(*sys.argv[1:])
