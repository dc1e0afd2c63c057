//! What blueshift itself answers a client, as one plain-text line: refusals before any model is
//! asked (431, 503) and the errors of a request that could not be proxied (400, 502, 504).

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;

use crate::route::snapshot::RouteRuntime;
use crate::route::split::Refusal;

/// What a request no route takes is answered (404).
pub const NO_ROUTE: &str = "no route for this request\n";

/// Why no color can take a request (503).
pub fn refusal(route: &RouteRuntime, refusal: Refusal) -> String {
    match refusal {
        Refusal::UnknownColor => {
            "blueshift: the override header names no color of the policy\n".to_string()
        }
        Refusal::Unavailable(i) => format!(
            "blueshift: color {} has no healthy backend or is rolled back\n",
            route.table.names[i]
        ),
        Refusal::NothingEligible => "blueshift: no color has a healthy backend\n".to_string(),
    }
}

/// The status for a request that failed, or 0 when the client is gone and nothing can be sent.
pub fn error_code(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        // The model did not answer in time: a gateway timeout, not a bad gateway.
        ErrorType::ReadTimedout | ErrorType::WriteTimedout | ErrorType::ConnectTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            _ => 500,
        },
    }
}

/// The line that says why a request to `color` failed with `code`.
pub fn error_body(code: u16, e: &Error, color: &str) -> String {
    match code {
        400 => "blueshift: bad request\n".to_string(),
        502 if matches!(e.etype(), ErrorType::HTTPStatus(_)) => format!(
            "blueshift: {}\n",
            e.context
                .as_ref()
                .map(|c| c.as_str())
                .unwrap_or("bad gateway")
        ),
        502 => format!(
            "blueshift: color {color} failed to answer ({})\n",
            e.etype().as_str()
        ),
        504 => format!("blueshift: color {color} timed out\n"),
        _ => format!("blueshift: {}\n", e.etype().as_str()),
    }
}

/// Writes a complete plain-text response.
pub async fn plain(session: &mut Session, code: u16, body: String) -> Result<()> {
    let mut resp = ResponseHeader::build(code, Some(3))?;
    resp.insert_header(CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(CONTENT_LENGTH, body.len().to_string())?;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}
