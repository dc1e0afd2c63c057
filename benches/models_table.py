"""benches/models.sh's table: medians per (row, target), latency added over direct, and how
blueshift compares with nginx tuned for model traffic. blueshift meets a row when its added p50
and p99 (on token streams also its time to first token) are within 0.05 ms of tuned nginx's, its
throughput is at least 98% of tuned nginx's and it had no errors. Lines of the results file:

    row round target user_ticks:system_ticks peak_rss_kib units rate p50_ms p99_ms errors [ttft50_ms ttft99_ms]

The CPU column is the proxy's CPU time per request (per stream on the token row), and in
brackets the part of it spent in the proxy's own code (user time); the rest is the kernel's, on
the proxy's behalf.
"""
import statistics as st
import sys

LABEL = {
    "sse": "token streams: delay per event (50 streams, 40 events 25 ms apart)",
    "body256k": "POST 256 KiB JSON (8 connections)",
    "body4m": "POST 4 MiB JSON (4 connections)",
    "wait2000": "50 ms model, 2,000 keep-alive clients",
    "close": "new connection per request (16 clients; connect to answer)",
    "h2": "HTTP/2 over TLS (32 connections x 10 streams; mean latency)",
    "tls": "new TLS connection per request (16 clients; connect, handshake, answer)",
}
ORDER = ["sse", "body256k", "body4m", "wait2000", "close", "h2", "tls"]
TARGETS = ["direct", "blueshift", "blueshift-before", "nginx-default", "nginx-tuned", "haproxy",
           "bare-pingora"]


def main(path, tck):
    rows = [line.split() for line in open(path) if line.strip()]
    med = {}
    for row in ORDER:
        for t in TARGETS:
            rs = [r for r in rows if r[0] == row and r[2] == t]
            if not rs:
                continue
            f = lambda i: st.median(float(r[i]) for r in rs)
            units = f(5)
            ticks = lambda r, user_only: sum(map(int, r[3].split(":")[: 1 if user_only else 2]))
            per_unit = lambda user_only: st.median(
                ticks(r, user_only) / tck * 1000 / max(float(r[5]), 1) for r in rs
            )
            med[(row, t)] = {
                "cpu_ms": per_unit(False),
                "user_ms": per_unit(True),
                "rss": f(4) / 1024,
                "rate": f(6),
                "p50": f(7),
                "p99": f(8),
                "errors": int(sum(float(r[9]) for r in rs)),
                "ttft50": f(10) if len(rs[0]) > 10 else None,
                "ttft99": f(11) if len(rs[0]) > 11 else None,
                "units": units,
            }
    print("| workload | target | added p50 | added p99 | first token p50 / p99 added | "
          "throughput | errors | CPU ms/req (user) | peak RSS MiB | throughput vs nginx tuned |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in ORDER:
        direct = med.get((row, "direct"))
        tuned = med.get((row, "nginx-tuned"))
        bare = med.get((row, "bare-pingora"))
        for t in TARGETS:
            m = med.get((row, t))
            if not m:
                continue
            base = direct if direct and t != "direct" else None
            add = lambda k: m[k] - base[k] if base else m[k]
            unit = "events/s" if row == "sse" else "req/s"
            first = "-"
            if m["ttft50"] is not None:
                b50 = base["ttft50"] if base else 0
                b99 = base["ttft99"] if base else 0
                first = f"{m['ttft50'] - b50:.2f} / {m['ttft99'] - b99:.2f} ms"
            verdict = "-"
            if tuned and t == "blueshift":
                tb = lambda k: tuned[k] - (direct[k] if direct else 0)
                ok = (add("p50") <= tb("p50") + 0.05 and add("p99") <= tb("p99") + 0.05
                      and m["rate"] >= tuned["rate"] * 0.98 and m["errors"] == 0)
                if m["ttft50"] is not None and tuned["ttft50"] is not None:
                    # Both are added over the same direct run, so compare them as they are.
                    ok = ok and all(m[k] <= tuned[k] + 0.05 for k in ("ttft50", "ttft99"))
                verdict = f"{m['rate'] / tuned['rate']:.2f}x {'meets' if ok else 'misses'}"
                if bare:
                    verdict += f" ({m['rate'] / bare['rate']:.2f}x bare Pingora)"
            elif tuned and t not in ("direct", "nginx-tuned"):
                verdict = f"{m['rate'] / tuned['rate']:.2f}x"
                now = med.get((row, "blueshift"))
                if t == "blueshift-before" and now:
                    verdict += f" (blueshift now: {now['rate'] / m['rate']:.2f}x this)"
            lat = "whole" if not base and t != "direct" else ""
            print(f"| {LABEL[row]} | {t} | {add('p50'):.2f} ms{' ' + lat if lat else ''} | "
                  f"{add('p99'):.2f} ms | {first} | {m['rate']:,.0f} {unit} | {m['errors']} | "
                  f"{m['cpu_ms']:.3f} ({m['user_ms']:.3f}) | {m['rss']:.1f} | {verdict} |")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
