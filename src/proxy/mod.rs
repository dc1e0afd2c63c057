//! The Pingora `ProxyHttp`: one section per phase a request passes through.
//!
//! `early_request_filter` loads the snapshot and sets the client connection's limits;
//! `request_filter` checks the framing, finds the route (reading the body first when a route
//! matches on its model field), picks the color and adds `X-Forwarded-For`/`-Proto` (HTTP/1);
//! `upstream_peer` picks a backend of it, falling back to another backend and then to
//! the stable color when connects fail; `upstream_request_filter` tidies the copy of the head
//! that goes upstream (adds the two for HTTP/2) and hands it to a mirror; `request_body_filter`
//! gives back a body read early and copies the body for the mirror;
//! `upstream_response_filter` labels the response, pins the session and, with quality gates,
//! puts a tap on the answer; `upstream_response_body_filter` notes the first byte and feeds the
//! tap as chunks pass; `logging` counts, and reads what the answer said.

pub mod body;
pub mod context;
pub mod forwarded;
pub mod framing;
pub mod gate;
pub mod headers;
pub mod mirror;
pub mod replies;
pub mod retry;
mod routing;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::SET_COOKIE;
use http::HeaderName;
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::config::LatencyMode;
use crate::judge::answer::Tap;
use crate::proxy::context::Ctx;
use crate::proxy::mirror::{Draft, Mirrors};
use crate::route::snapshot::Shared;
use crate::route::split::{self, Decision};
use retry::Retry;

/// Response header naming the color that served a request.
pub const COLOR_HEADER: &str = "x-blueshift-color";

/// [`COLOR_HEADER`], parsed once.
static COLOR_NAME: HeaderName = HeaderName::from_static(COLOR_HEADER);

/// The proxy; cheap to share (clones share the mirrors), all state is in the snapshot.
#[derive(Clone)]
pub struct Blueshift {
    state: Shared,
    mirrors: Arc<Mirrors>,
}

impl Blueshift {
    /// A proxy reading from `state`.
    pub fn new(state: Shared) -> Self {
        Blueshift {
            state,
            mirrors: Arc::default(),
        }
    }
}

#[async_trait]
impl ProxyHttp for Blueshift {
    /// Boxed, see [`Ctx`].
    type CTX = Box<Ctx>;

    fn new_ctx(&self) -> Box<Ctx> {
        Box::new(Ctx::new())
    }

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {
        // None. Pingora's default is a compression module switched off, which only costs each
        // request its set-up and calls (~930 instructions); answers pass as the model encoded them.
    }

    // ---- early_request_filter: the client connection's settings ----------------------------

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<()> {
        // Loaded once, here in the first hook; the rest of the request reads this generation.
        let t = &ctx.snap.insert(self.state.load_full()).policy.timeouts;
        // Pipelined requests are answered in order (RFC 9112 section 9.3.2).
        session.set_pipelining_enabled(true);
        session.set_read_timeout(Some(t.client_body));
        session.set_write_timeout(Some(t.client_send));
        // Only where the connection stays open anyway (not HTTP/1.0, `connection: close`).
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(t.keepalive.as_secs().max(1)));
        }
        Ok(())
    }

    // ---- request_filter: choose the route and the color, say who asked --------------------

    async fn request_filter(&self, session: &mut Session, ctx: &mut Box<Ctx>) -> Result<bool> {
        let snap = ctx
            .snap
            .get_or_insert_with(|| self.state.load_full())
            .clone();
        let head = match framing::check(session.req_header()) {
            Ok(head) => head,
            Err(refusal) => {
                // The rest of the connection cannot be trusted to be framed as this request says.
                session.set_keepalive(None);
                let body = format!("blueshift: {}\n", refusal.reason);
                replies::plain(session, refusal.status, body).await?;
                return Ok(true);
            }
        };
        let Some(i) = self.find_route(session, ctx, &snap, head).await? else {
            replies::plain(session, 404, replies::NO_ROUTE.into()).await?;
            return Ok(true);
        };
        ctx.route = Some(i);
        let (route, rt) = snap.route(i);
        let req = session.req_header();
        let input = split::inputs(req, route);
        match split::decide(&rt.table, input, fastrand::u32(..)) {
            Ok(d) => {
                let started = rt.colors[d.color()].outcomes.start(ctx.started);
                ctx.in_flight = Some((d.color(), started));
                ctx.color = Some(d.color());
                ctx.assign = matches!(d, Decision::New(_))
                    && route.affinity.as_ref().is_some_and(|a| a.cookie.is_some());
                ctx.mirror = Draft::choose(rt, d.color(), req);
                if !session.is_http2() {
                    // On an HTTP/1 client's head, before Pingora copies it for each attempt: the
                    // copy then has no header-case map to clone (~570 instructions a request).
                    // An HTTP/2 head has none, and gets them on the copy (more copies there).
                    let (client, scheme) = forwarded::who_asked(session);
                    forwarded::add(session.req_header_mut(), client, scheme)?;
                }
                if head.expects_continue && !ctx.continued {
                    session.write_continue_response().await?;
                }
                ctx.head = head;
                Ok(false)
            }
            Err(refusal) => {
                replies::plain(session, 503, replies::refusal(rt, refusal)).await?;
                Ok(true)
            }
        }
    }

    // ---- upstream_peer: choose the backend ------------------------------------------------

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Box<Ctx>,
    ) -> Result<Box<HttpPeer>> {
        let (snap, route) = ctx
            .snap
            .as_ref()
            .zip(ctx.route)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route"))?;
        let rt = &snap.routes[route];
        let mut color = ctx
            .color
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no color"))?;
        loop {
            if let Some(b) = rt.colors[color].pick(&ctx.tried, fastrand::u32(..)) {
                if ctx.color != Some(color) {
                    // Fell back: the wait is now on this color's backends.
                    if let Some((was, started)) = ctx.in_flight.take() {
                        rt.colors[was].outcomes.finish(started);
                    }
                    let started = rt.colors[color].outcomes.start(ctx.started);
                    ctx.in_flight = Some((color, started));
                }
                ctx.color = Some(color);
                return Ok(Box::new(b.peer.clone()));
            }
            // Nothing left in this color: the stable color is the last resort.
            let stable = rt.table.stable;
            if color == stable || !rt.table.eligible[stable] {
                return Error::e_explain(
                    ErrorType::HTTPStatus(502),
                    format!(
                        "no backend of color {} is left to try (the last one: {})",
                        rt.table.names[color],
                        ctx.last_failure.unwrap_or("no healthy backend"),
                    ),
                );
            }
            // A new session is then pinned to stable (the cookie follows `ctx.color`); an existing
            // pin is left alone, since health checks decide whether its color is really gone.
            color = stable;
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Box<Ctx>,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing was sent, so another backend (or the stable color) can take the request.
        ctx.local_failure |= crate::route::peer::local_exhaustion(&e);
        ctx.give_up_on(peer, e.etype().as_str());
        e.set_retry(true);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Box<Ctx>,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer {peer}"));
        let attempt = retry::Attempt {
            reused: client_reused,
            idempotent: session.req_header().method.is_idempotent(),
            body_done: session.is_body_done(),
            body_kept: !session.as_ref().retry_buffer_truncated(),
            answered: session.response_written().is_some(),
        };
        // Set either way: Pingora may already have said no to a request it could not finish
        // writing, which the rule may send again.
        match retry::decide(&e, attempt) {
            Retry::No => e.set_retry(false),
            Retry::Again => e.set_retry(true),
            Retry::Elsewhere => {
                ctx.give_up_on(peer, e.etype().as_str());
                e.set_retry(true);
            }
        }
        e
    }

    // ---- upstream_request_filter: tidy the copy that goes upstream, say who asked (HTTP/2) --

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        framing::tidy(req, ctx.head);
        if session.is_http2() {
            let (client, scheme) = forwarded::who_asked(session);
            forwarded::add(req, client, scheme)?;
        }
        ctx.held.attempt();
        let max_body = ctx.route().map(|(route, _)| route.mirroring.max_body);
        if let (Some(draft), Some(max_body)) = (ctx.mirror.as_mut(), max_body) {
            // The copy is of what the serving model gets, X-Forwarded-For included.
            draft.start(req, max_body);
        }
        Ok(())
    }

    // ---- request_body_filter: a body read early given back, the mirror's copy of it -------

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        ctx.held.give_back(body);
        let (Some(snap), Some(route)) = (ctx.snap.as_ref(), ctx.route) else {
            return Ok(());
        };
        let Some(draft) = ctx.mirror.as_mut() else {
            return Ok(());
        };
        if let Some(chunk) = body {
            draft.feed(chunk, snap.policy.routes[route].mirroring.max_body);
        }
        if end_of_stream {
            if let Some(draft) = ctx.mirror.take() {
                ctx.served = self.mirrors.send(snap, route, draft);
            }
        }
        Ok(())
    }

    // ---- upstream_response_filter: label and pin ------------------------------------------

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        let (Some(snap), Some(r), Some(color)) = (ctx.snap.as_ref(), ctx.route, ctx.color) else {
            return Ok(());
        };
        let (route, rt) = snap.route(r);
        let c = &rt.colors[color];
        let cookie = c.set_cookie.as_ref().filter(|_| ctx.assign);
        crate::proxy::headers::edit_response(resp, |headers| {
            headers.reserve(2);
            headers.insert(&COLOR_NAME, c.name_header.clone());
            if let Some(cookie) = cookie {
                // append, not insert: the model server's own cookies pass through untouched.
                headers.append(SET_COOKIE, cookie.clone());
            }
            Ok(())
        })?;
        if crate::judge::grpc::is_grpc(&resp.headers) {
            // A trailers-only answer carries its status here; otherwise the trailers will.
            ctx.grpc = Some(crate::judge::grpc::status(&resp.headers));
        }
        if let Some(q) = &route.quality {
            // Colors with weight only (a drained or overridden color's answers judge nothing),
            // and answers a mirror's will be compared with.
            if c.percent > 0 || ctx.mirror.is_some() || ctx.served.is_some() {
                let head = session.req_header().method == http::Method::HEAD;
                ctx.tap = Tap::for_response(resp, head, q).map(Box::new);
            }
        }
        Ok(())
    }

    // ---- upstream_response_body_filter: the first byte, and the tap ------------------------

    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Box<Ctx>,
    ) -> Result<Option<Duration>> {
        let Some(chunk) = body.as_ref().filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        if ctx.first_byte.is_none() {
            ctx.first_byte = Some(ctx.started.elapsed());
            let judged_by_first_byte = ctx
                .route()
                .is_some_and(|(r, _)| r.rollback.latency == LatencyMode::FirstByte);
            if judged_by_first_byte {
                // A stream that has started is no longer waiting, however long it runs.
                ctx.end_in_flight();
            }
        }
        let (Some(snap), Some(route)) = (ctx.snap.as_ref(), ctx.route) else {
            return Ok(None);
        };
        if let (Some(tap), Some(q)) = (ctx.tap.as_mut(), &snap.policy.routes[route].quality) {
            tap.feed(chunk, q);
        }
        Ok(None)
    }

    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut http::HeaderMap,
        ctx: &mut Box<Ctx>,
    ) -> Result<()> {
        if let Some(status) = ctx.grpc.as_mut() {
            *status = crate::judge::grpc::status(trailers).or(*status);
        }
        Ok(())
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Box<Ctx>, e: &Error) -> bool {
        // A client that hangs up or cancels is not blueshift's error; the metrics count it.
        retry::client_hung_up(e)
    }

    // ---- fail_to_proxy: a short plain-text reason -----------------------------------------

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<Ctx>,
    ) -> FailToProxy {
        let code = replies::error_code(e);
        if code > 0 && session.response_written().is_none() {
            let color = ctx
                .color
                .zip(ctx.route())
                .map(|(c, (_, rt))| rt.table.names[c].as_str())
                .unwrap_or("-");
            let _ = replies::plain(session, code, replies::error_body(code, e, color)).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    // ---- logging: the one hook every request passes ---------------------------------------

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<Ctx>) {
        let status = session.response_written().map(|r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        ctx.record(status, e, elapsed);
        if ctx.snap.as_ref().is_some_and(|s| s.policy.access_log) {
            routing::access_log(session, ctx, status, elapsed);
        }
    }
}
