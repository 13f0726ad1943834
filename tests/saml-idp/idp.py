#!/usr/bin/env python3
"""A SAML 2.0 identity provider for Cloakroom's end-to-end tests, built on pysaml2.

Usage: idp.py PORT WORKDIR

Listens on 127.0.0.1:PORT and serves:
  GET  /metadata                 the IdP's metadata (entity id, HTTP-Redirect SSO, signing cert)
  POST /trust?url=<sp metadata>  fetch the SP's metadata (Cloakroom's /v1/saml/metadata) and trust it
  GET  /sso?SAMLRequest=..&RelayState=..&user=..&groups=a,b
                                 "log in" as `user` (the test appends it) and answer the
                                 AuthnRequest with the HTTP-POST binding's auto-submit form:
                                 a response whose assertion pysaml2 (xmlsec1) signs with RSA-SHA256.
The signing key and certificate are generated in WORKDIR at start.
"""

import datetime
import os
import sys
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAME_FORMAT_BASIC, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

PORT = int(sys.argv[1])
WORKDIR = sys.argv[2]
BASE = f"http://127.0.0.1:{PORT}"
KEY = os.path.join(WORKDIR, "idp.key")
CERT = os.path.join(WORKDIR, "idp.crt")
SP_METADATA = os.path.join(WORKDIR, "sp.xml")


def make_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloakroom test idp")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    with open(KEY, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(CERT, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def config(with_sp):
    c = {
        "entityid": BASE + "/idp",
        "service": {
            "idp": {
                "endpoints": {"single_sign_on_service": [(BASE + "/sso", BINDING_HTTP_REDIRECT)]},
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None,
                                       "name_form": NAME_FORMAT_BASIC}},
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                "sign_assertion": True,
                "sign_response": False,
            }
        },
        "key_file": KEY,
        "cert_file": CERT,
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "metadata": {"local": [SP_METADATA]} if with_sp else {},
    }
    conf = IdPConfig()
    conf.load(c)
    return conf


STATE = {"server": None}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("idp: " + (fmt % args) + "\n")

    def reply(self, status, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/metadata":
            return self.reply(200, create_metadata_string(None, config(False), sign=False), "application/xml")
        if url.path == "/sso":
            server = STATE["server"]
            if server is None:
                return self.reply(409, "POST /trust first")
            req = server.parse_authn_request(q["SAMLRequest"], BINDING_HTTP_REDIRECT)
            args = server.response_args(req.message, [BINDING_HTTP_POST])
            user = q.get("user", "alice@example.com")
            groups = [g for g in q.get("groups", "").split(",") if g]
            resp = server.create_authn_response(
                {"groups": groups},
                userid=user,
                name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user),
                authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
                sign_assertion=True,
                sign_response=False,
                sign_alg=SIG_RSA_SHA256,
                digest_alg=DIGEST_SHA256,
                **args,
            )
            http = server.apply_binding(BINDING_HTTP_POST, str(resp), args["destination"],
                                        q.get("RelayState", ""), response=True)
            return self.reply(200, http["data"], "text/html")
        return self.reply(404, "not found")

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/trust":
            with urllib.request.urlopen(q["url"], timeout=10) as r:
                data = r.read()
            with open(SP_METADATA, "wb") as f:
                f.write(data)
            STATE["server"] = Server(config=config(True))
            return self.reply(200, "ok")
        return self.reply(404, "not found")


if __name__ == "__main__":
    make_key()
    httpd = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print("ready", flush=True)
    httpd.serve_forever()
