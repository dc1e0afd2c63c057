"""A gRPC client for blueshift's tests: real grpcio, one channel (one HTTP/2 connection).

  python3 grpc_client.py TARGET unary|stream|chat|cancel N [--tls CA SERVERNAME] [--meta KEY=VALUE ...]

cancel: a streaming call of 50 tokens 100 ms apart that the client cancels after the first.

Prints one JSON line per call: {"code", "color", "version", "body", "trailers"} where color is
the x-blueshift-color initial metadata.
"""
import json
import sys

import grpc

target, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = []
for i, a in enumerate(sys.argv):
    if a == "--meta":
        k, v = sys.argv[i + 1].split("=", 1)
        meta.append((k, v))
if "--tls" in sys.argv:
    i = sys.argv.index("--tls")
    creds = grpc.ssl_channel_credentials(open(sys.argv[i + 1], "rb").read())
    options = (("grpc.ssl_target_name_override", sys.argv[i + 2]),)
    channel = grpc.secure_channel(target, creds, options)
else:
    channel = grpc.insecure_channel(target)
raw = dict(request_serializer=None, response_deserializer=None)


def line(code, initial, body, trailers):
    initial = dict(initial or ())
    print(
        json.dumps(
            {
                "code": code.name,
                "color": initial.get("x-blueshift-color"),
                "version": initial.get("x-model-version"),
                "body": body,
                "trailers": dict(trailers or ()),
            }
        ),
        flush=True,
    )


for call in range(n):
    try:
        if kind == "unary":
            rpc = channel.unary_unary("/model.Predictor/Predict", **raw)
            body, c = rpc.with_call(f"input {call}".encode(), metadata=meta, timeout=10)
            line(c.code(), c.initial_metadata(), json.loads(body), c.trailing_metadata())
        elif kind == "stream":
            rpc = channel.unary_stream("/model.Predictor/Stream", **raw)
            it = rpc(b"5", metadata=meta, timeout=10)
            msgs = [m.decode() for m in it]
            line(it.code(), it.initial_metadata(), msgs, it.trailing_metadata())
        elif kind == "cancel":
            rpc = channel.unary_stream("/model.Predictor/Stream", **raw)
            it = rpc(b"50/100", metadata=meta, timeout=10)
            first = next(it).decode()
            it.cancel()
            line(it.code(), it.initial_metadata(), [first], None)
        else:
            rpc = channel.stream_stream("/model.Predictor/Chat", **raw)
            it = rpc(iter([b"hello", b"model"]), metadata=meta, timeout=10)
            msgs = [m.decode() for m in it]
            line(it.code(), it.initial_metadata(), msgs, it.trailing_metadata())
    except grpc.RpcError as e:
        line(e.code(), e.initial_metadata(), e.details(), e.trailing_metadata())
