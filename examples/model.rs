//! The stand-in model server on an address, for benches/models.sh: `/predict` (add `?delay=MS`
//! for a model that takes that long), `/stream?events=N&gap=MS&stamp=1` (a token stream whose
//! events say when they were sent), `/big?bytes=N`, `/health`.
//!
//!   cargo run --release --example model -- ADDR [VERSION]

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5001".into());
    let version = args.next().unwrap_or_else(|| "v1".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = std::net::TcpListener::bind(&addr)?;
        let _server = blueshift::model_server::ModelServer::start(listener, &version)?;
        eprintln!("model {version} on {addr}");
        let _ = tokio::signal::ctrl_c().await;
        Ok(())
    })
}
