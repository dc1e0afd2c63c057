//! Wiring: a Pingora [`Server`] with the proxy, the admin API and the supervisor.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use log::{info, warn};
use pingora_core::apps::http_app::HttpServer;
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;

use crate::config::{self, Policy};
use crate::control::Supervisor;
use crate::ops::admin::Admin;
use crate::ops::history::{History, Sampler};
use crate::proxy::gate::Gate;
use crate::proxy::tls::CertStore;
use crate::proxy::Blueshift;
use crate::Error;

/// Idle upstream connections kept for reuse (all backends together) unless a Pingora conf sets
/// `upstream_keepalive_pool_size`; each costs a socket and a few hundred bytes, and stays until
/// its backend closes it or newer ones push it out ([`crate::route::peer::IDLE`]).
pub const UPSTREAM_POOL: usize = 1024;

/// The top-level keys of a Pingora conf that parsed.
fn top_level_keys(text: &str) -> Vec<String> {
    match marked_yaml::parse_yaml(0, text.trim_start().trim_start_matches("---")) {
        Ok(marked_yaml::Node::Mapping(map)) => map.keys().map(|k| k.as_str().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// Read buffer of each client connection. Pingora's default (64 KiB, sized for TLS records)
/// stays allocated for as long as a keep-alive connection idles; plaintext HTTP/1 parses into
/// its own buffer, so a small one costs no throughput and saves ~60 KiB per connection.
const DOWNSTREAM_READ_BUFFER: usize = 4 * 1024;

/// How `blueshift serve` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The policy file.
    pub policy: PathBuf,
    /// Detach into the background (Pingora's daemon mode).
    pub daemon: bool,
    /// Take the listening sockets over from a running blueshift (graceful upgrade).
    pub upgrade: bool,
    /// Pingora's own server configuration file.
    pub pingora_conf: Option<PathBuf>,
}

/// Runs the proxy until a shutdown signal; returns once it has stopped.
pub fn serve(o: ServeOptions) -> Result<(), Error> {
    let policy = config::read_file(&o.policy).map_err(|problems| Error::Policy {
        path: o.policy.clone(),
        problems,
    })?;
    if !o.upgrade {
        // Pingora would only log a failed bind from inside its runtime; say it plainly first.
        let addrs = policy.listen.iter().map(|l| l.addr);
        for addr in addrs.chain(std::iter::once(policy.admin)) {
            check_bindable(addr)?;
        }
    }
    let opt = Opt {
        upgrade: o.upgrade,
        daemon: o.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let (mut conf, given) = match &o.pingora_conf {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Pingora(format!("{}: {e}", path.display())))?;
            let conf = ServerConf::from_yaml(&text)
                .map_err(|e| Error::Pingora(format!("{}: {e}", path.display())))?;
            (conf, top_level_keys(&text))
        }
        None => (ServerConf::default(), Vec::new()),
    };
    // blueshift's defaults where Pingora's conf (if any) says nothing: keys it left unset.
    let unset = |key: &str| !given.iter().any(|k| k == key);
    // One proxy thread runs as a single-threaded runtime without work stealing: 13% more requests
    // per CPU-second for a proxy whose requests are short and independent (BENCHMARKS.md). More
    // threads share one work-stealing runtime. With separate per-thread runtimes Pingora 0.9's
    // upstream pool misses pooled connections: the idle watcher of a connection runs on a random
    // thread and can still hold it when a request on another takes it, so the request opens a new
    // one and Pingora logs "failed to acquire reusable stream" (cloudflare/pingora#998). In a
    // work-stealing runtime the watcher is spawned on the thread that released the connection, and
    // tokio queues the request the watcher wakes on that same thread, behind it
    // (`benches/threads.sh`, two threads, 150k requests: 365-1,220 misses without stealing, none
    // with it).
    if unset("work_stealing") {
        conf.work_stealing = conf.threads > 1;
    }
    // A larger upstream pool than Pingora's 128 idle connections: with more requests in flight
    // than that, every release past 128 closed a connection and the next request opened one,
    // ~2,000 connects a second at 256 clients, until the ephemeral ports ran out and clients
    // got 502s.
    if unset("upstream_keepalive_pool_size") {
        conf.upstream_keepalive_pool_size = UPSTREAM_POOL;
    }
    // Pingora's own ("fast") timers suit short timeouts that fire: a registration in a map per
    // 10 ms tick that stays until its deadline, cancelled or not. blueshift's timeouts are
    // seconds long and almost never fire, which is what tokio's timer wheel is for: each is
    // removed when the read or write it guards finishes. 1-2% fewer instructions per request
    // (BENCHMARKS.md, "The last levers"); timeouts under a second stay on Pingora's timers.
    if unset("fast_timeout_to_tokio_threshold_seconds") {
        conf.fast_timeout_to_tokio_threshold_seconds = Some(0);
    }
    if conf.threads > 1 && !conf.work_stealing {
        warn!(
            "threads: {} with work_stealing: false: Pingora 0.9 then misses some pooled upstream \
             connections and opens new ones, logging \"failed to acquire reusable stream\" \
             (cloudflare/pingora#998); leave work_stealing out or set it to true",
            conf.threads
        );
    }

    // Pingora keeps accepting for 5 minutes after SIGTERM by default; an edge proxy behind a
    // service manager should stop in seconds, after in-flight requests finish.
    conf.grace_period_seconds.get_or_insert(1);
    conf.graceful_shutdown_timeout_seconds.get_or_insert(10);
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    add_services(&mut server, o.policy, policy)?;
    info!("blueshift {} serving", env!("CARGO_PKG_VERSION"));
    server.run(RunArgs::default());
    Ok(())
}

fn check_bindable(addr: SocketAddr) -> Result<(), Error> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|e| Error::Listen {
            addr,
            reason: match e.kind() {
                std::io::ErrorKind::AddrInUse => "the address is already in use".into(),
                std::io::ErrorKind::PermissionDenied => "permission denied".into(),
                _ => e.to_string().to_lowercase(),
            },
        })
}

/// Adds the proxy, admin and supervisor services for `policy` to `server`.
pub fn add_services(server: &mut Server, path: PathBuf, policy: Policy) -> Result<(), Error> {
    let listen = policy.listen.clone();
    let admin_addr = policy.admin;
    // One certificate store per TLS listener: the listener reads it on every handshake, the
    // supervisor swaps it when its files change.
    let mut certs = Vec::new();
    for l in &listen {
        if let Some(files) = &l.tls {
            let store = CertStore::new(files.clone())
                .map_err(|e| Error::Other(format!("listen {}: {e}", l.addr)))?;
            certs.push((l.addr, store));
        }
    }
    let supervisor = Supervisor::new(path, policy, certs.clone());
    let (shared, handle) = (supervisor.shared(), supervisor.handle());

    // Plain listeners take HTTP/2 with prior knowledge too (gRPC clients): the gate tells it
    // from HTTP/1.1 by the connection preface and hands it to a proxy with h2c on.
    let logic = Blueshift::new(shared.clone());
    let http1 = pingora_proxy::http_proxy(&server.configuration, logic.clone());
    let mut h2c = pingora_proxy::http_proxy(&server.configuration, logic);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    h2c.server_options = Some(options);
    let mut proxy = Service::new(
        "blueshift proxy".to_string(),
        Gate::new(http1, h2c, shared.clone()),
    );
    // TLS listeners first: Pingora binds them in this order, and `/healthz` probes only the
    // last one, a plain one if there is any (a bare TCP probe of a TLS listener logs a failed
    // handshake).
    let mut ordered: Vec<_> = listen.iter().collect();
    ordered.sort_by_key(|l| l.tls.is_none());
    let bound_last = ordered.last().map(|l| l.addr);
    for l in ordered {
        match certs.iter().find(|(addr, _)| *addr == l.addr) {
            Some((addr, store)) => {
                let mut settings = TlsSettings::intermediate("", "")
                    .map_err(|e| Error::Pingora(format!("TLS on {addr}: {e}")))?;
                settings.set_cert_resolver(store.clone());
                settings.enable_h2();
                proxy.add_tls_with_settings(&addr.to_string(), None, settings);
            }
            None => {
                let buffers = L4BufferSettings::default().read(DOWNSTREAM_READ_BUFFER);
                proxy.add_listener(ListenerConfig::tcp(l.addr.to_string()).l4_buffer(buffers));
            }
        }
    }
    let history = std::sync::Arc::new(History::default());
    let sampler = Sampler {
        state: shared.clone(),
        history: history.clone(),
    };
    let mut admin = Service::new(
        "blueshift admin".to_string(),
        HttpServer::new_app(Admin::new(shared, handle, history, bound_last)),
    );
    admin.add_tcp(&admin_addr.to_string());
    admin.threads = Some(1);

    let supervisor = server.add_service(background_service("blueshift supervisor", supervisor));
    let proxy = server.add_service(proxy);
    proxy.add_dependency(&supervisor);
    server.add_service(admin);
    server.add_service(background_service("blueshift history", sampler));
    Ok(())
}
