"""WebSocket echo server and client for blueshift's tests (the `websockets` package).

  python3 ws.py serve              prints "ready PORT", echoes every message back (GET /health: 200)
  python3 ws.py echo URL [CAFILE]  sends three messages, prints each echo on its own line
"""
import asyncio
import http
import ssl
import sys

import websockets


async def serve():
    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    def health(connection, request):
        # Plain GETs of /health (blueshift's health checks) get a 200; the rest upgrade.
        if request.path == "/health":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        return None

    async with websockets.serve(echo, "127.0.0.1", 0, process_request=health) as server:
        print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


async def echo(url, cafile):
    context = None
    if url.startswith("wss:"):
        context = ssl.create_default_context(cafile=cafile)
    async with websockets.connect(url, ssl=context, open_timeout=10) as ws:
        for message in ("hello", "blue", "shift"):
            await ws.send(message)
            print(await asyncio.wait_for(ws.recv(), 10), flush=True)


if sys.argv[1] == "serve":
    asyncio.run(serve())
else:
    asyncio.run(echo(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
