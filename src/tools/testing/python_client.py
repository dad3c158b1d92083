"""A custody client written from the .proto alone, with Debian's python3-grpcio: proves the contract is
language-neutral. Usage: python_client.py <stubs dir> <port> <ca> <cert> <key> <request.json>
Prints the response as JSON, or {"error": {"code", "reason"}} on a gRPC error."""
import json
import sys

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from custody.v1 import custody_pb2, custody_pb2_grpc  # noqa: E402

port, ca, cert, key, request_file = sys.argv[2:7]
read = lambda p: open(p, "rb").read()  # noqa: E731
creds = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
options = [("grpc.ssl_target_name_override", "localhost")]
with grpc.secure_channel(f"127.0.0.1:{port}", creds, options) as channel:
    stub = custody_pb2_grpc.CardCustodyStub(channel)
    req = json.load(open(request_file))
    user = req["user"]
    request = custody_pb2.ReencryptForKnotRequest(
        secrets_jwe=req["secrets_jwe"],
        key_fingerprint=req["key_fingerprint"],
        knot_jwk=req["knot_jwk"],
        request_id=req["request_id"],
        user=custody_pb2.KnotUser(
            name=custody_pb2.KnotName(**user["name"]),
            address=custody_pb2.KnotAddress(**user["address"]),
            phone_number=user["phone_number"],
        ),
    )
    try:
        response = stub.ReencryptForKnot(request, timeout=10)
        print(json.dumps({
            "jwe": response.jwe,
            "key_fingerprint": response.key_fingerprint,
            "recipient_thumbprint": response.recipient_thumbprint,
            "card_last4": response.card_last4,
        }))
    except grpc.RpcError as err:
        reason = dict(err.trailing_metadata() or ()).get("custody-reason")
        print(json.dumps({"error": {"code": err.code().name, "reason": reason}}))
