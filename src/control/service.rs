//! The supervisor as a Pingora background service: its loop over commands, probe results and
//! the tick, and the readiness the proxy waits for.

use std::time::Duration;

use async_trait::async_trait;
use log::warn;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::services::ServiceReadyNotifier;

use super::{watch, Supervisor, TICK};

#[async_trait]
impl BackgroundService for Supervisor {
    /// The proxy service depends on this one, so it starts accepting only once every backend
    /// had its first health check (or a check timeout passed): a fresh start or a graceful
    /// upgrade never answers 503 just because nothing was probed yet.
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let Some((mut commands, mut probes)) = self.channels.lock().await.take() else {
            return;
        };
        let warm_up = {
            let mut inner = self.inner.lock().await;
            inner.sync_checks();
            let certs = inner.certs.iter().map(|(_, c)| c.info().files).collect();
            watch::spawn(inner.path.clone(), certs, self.handle.clone());
            let slowest = inner.health.keys().map(|t| t.health.timeout).max();
            tokio::time::sleep(slowest.unwrap_or_default() + Duration::from_millis(100))
        };
        tokio::pin!(warm_up);
        let mut ready = Some(ready);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                Some(cmd) = commands.recv() => self.inner.lock().await.on_command(cmd),
                Some(probe) = probes.recv() => {
                    let mut inner = self.inner.lock().await;
                    inner.on_probe(probe);
                    if inner.all_checked() {
                        if let Some(r) = ready.take() {
                            r.notify_ready();
                        }
                    }
                }
                _ = &mut warm_up, if ready.is_some() => {
                    warn!("some backends have not answered a first health check yet; serving anyway");
                    if let Some(r) = ready.take() {
                        r.notify_ready();
                    }
                }
                _ = tick.tick() => self.inner.lock().await.on_tick(),
            }
        }
    }
}
