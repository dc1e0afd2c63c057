//! Which route takes a request: the first whose match holds, the body read first when that
//! route matches on the model field (and given back to the model as it was, by [`super::body`]).

use std::time::Duration;

use log::info;
use pingora_core::Result;
use pingora_proxy::Session;

use super::context::Ctx;
use super::{body, framing, Blueshift};
use crate::route::matcher::Found;
use crate::route::snapshot::Snapshot;

impl Blueshift {
    /// The route that takes the request, reading its body first when the first route that may
    /// take it matches on the model field; `None` when no route takes it.
    pub(super) async fn find_route(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        snap: &Snapshot,
        head: framing::Head,
    ) -> Result<Option<usize>> {
        let found = match snap.matcher.find(session.req_header(), None) {
            Found::NeedsModel => {
                if head.expects_continue {
                    // The client waits for this before it sends the body about to be read.
                    session.write_continue_response().await?;
                    ctx.continued = true;
                }
                let (model, held) = body::read_model(session, &snap.policy.routing).await?;
                ctx.held = held;
                snap.matcher
                    .find(session.req_header(), Some(model.as_deref()))
            }
            found => found,
        };
        Ok(match found {
            Found::Route(i) => Some(i),
            Found::NeedsModel | Found::Nothing => None,
        })
    }
}

/// The access log's line for a finished request: `client method uri -> color status time`.
pub(super) fn access_log(session: &Session, ctx: &Ctx, status: Option<u16>, elapsed: Duration) {
    let Some(snap) = ctx.snap.as_ref() else {
        return;
    };
    let req = session.req_header();
    info!(
        "{} {} {} -> {} {} {:.1}ms",
        session
            .client_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        req.method,
        req.uri,
        served_by(snap, ctx.route, ctx.color),
        status.map_or_else(|| "error".into(), |s| s.to_string()),
        elapsed.as_secs_f64() * 1000.0
    );
}

/// `color` for a policy without `routes:`, `route/color` with them, `-` for what is not chosen.
fn served_by(snap: &Snapshot, route: Option<usize>, color: Option<usize>) -> String {
    let Some(r) = route else {
        return "-".into();
    };
    let color = color.map_or("-", |c| snap.routes[r].table.names[c].as_str());
    match snap.policy.listed_routes {
        true => format!("{}/{color}", snap.policy.routes[r].name),
        false => color.to_owned(),
    }
}
