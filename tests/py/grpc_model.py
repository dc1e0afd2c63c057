"""A gRPC model server for blueshift's tests: real grpcio, no generated code.

  python3 grpc_model.py VERSION [--tls CERT KEY]

Prints "ready PORT" once serving on 127.0.0.1 (an ephemeral port). Lines on stdin switch its
behaviour: "mode healthy", "mode internal" (every call fails with INTERNAL), "mode not_serving"
(the health service says NOT_SERVING).

  /model.Predictor/Predict   unary: answers JSON with the label, the version and the metadata it
                             got; sends initial metadata x-model-version and a trailer
  /model.Predictor/Stream    server streaming: the request's number of messages, "tok 0" ...
  /model.Predictor/Chat      bidirectional: echoes each message, upper-cased
  grpc.health.v1.Health      the standard health service
"""
import json
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

version = sys.argv[1]
mode = {"now": "healthy"}
raw = dict(request_deserializer=None, response_serializer=None)


def check(context):
    if mode["now"] == "internal":
        context.abort(grpc.StatusCode.INTERNAL, f"model {version} failed")


def predict(request, context):
    check(context)
    context.send_initial_metadata((("x-model-version", version),))
    metadata = {k: v for k, v in context.invocation_metadata() if not k.startswith(":")}
    label = "positive" if sum(request) % 10 < 7 else "negative"
    context.set_trailing_metadata((("x-model-trailer", "done"),))
    body = {"prediction": label, "model_version": version, "metadata": metadata}
    return json.dumps(body).encode()


def stream(request, context):
    # "N" or "N/GAP_MS": N tokens, GAP_MS apart (a model generating them).
    check(context)
    n, _, gap = (request.decode() or "3").partition("/")
    for i in range(int(n)):
        if i and gap:
            time.sleep(int(gap) / 1000)
        yield f"tok {i} from {version}".encode()


def chat(requests, context):
    check(context)
    for r in requests:
        yield r.upper()


handlers = grpc.method_handlers_generic_handler(
    "model.Predictor",
    {
        "Predict": grpc.unary_unary_rpc_method_handler(predict, **raw),
        "Stream": grpc.unary_stream_rpc_method_handler(stream, **raw),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, **raw),
    },
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
server.add_generic_rpc_handlers((handlers,))
checker = health.HealthServicer()
health_pb2_grpc.add_HealthServicer_to_server(checker, server)
for service in ("", "model.Predictor"):
    checker.set(service, health_pb2.HealthCheckResponse.SERVING)
if "--tls" in sys.argv:
    i = sys.argv.index("--tls")
    cert, key = (open(p, "rb").read() for p in sys.argv[i + 1 : i + 3])
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(((key, cert),)))
else:
    port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"ready {port}", flush=True)


def control():
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["mode"]:
            mode["now"] = words[1]
            status = (
                health_pb2.HealthCheckResponse.NOT_SERVING
                if words[1] == "not_serving"
                else health_pb2.HealthCheckResponse.SERVING
            )
            for service in ("", "model.Predictor"):
                checker.set(service, status)
            print(f"mode {words[1]}", flush=True)
    server.stop(0)


threading.Thread(target=control, daemon=True).start()
server.wait_for_termination()
