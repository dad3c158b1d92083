"""Interop peer: Python's jwcrypto (Debian python3-jwcrypto), driven by the tests over stdin/stdout.

encrypt: {"jwk": <public JWK>, "plaintext": <text>, "header": {...}} -> compact JWE
decrypt: {"jwk": <private JWK>, "jwe": <compact JWE>}             -> plaintext
pem2jwk: {"pem": <public key PEM>}                                 -> public JWK (JSON)
"""
import json
import sys

from jwcrypto import jwe, jwk

request = json.load(sys.stdin)
mode = sys.argv[1]
if mode == "pem2jwk":
    sys.stdout.write(jwk.JWK.from_pem(request["pem"].encode()).export_public())
    sys.exit(0)
key = jwk.JWK(**request["jwk"])
if mode == "encrypt":
    token = jwe.JWE(request["plaintext"].encode(), protected=json.dumps(request["header"]))
    token.add_recipient(key)
    sys.stdout.write(token.serialize(compact=True))
else:
    token = jwe.JWE()
    token.deserialize(request["jwe"], key=key)
    sys.stdout.write(token.payload.decode())
