//! The CLI's calls to the admin API, through `ureq` (HTTP/1.1, plain: the admin API listens on
//! a local or private address), each answered with its status and body.

use std::time::Duration;

use crate::Error;

/// An answer: status code and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

/// Sends `method path` to the admin API at `admin` (`host:port` or `http://host:port`).
pub fn call(admin: &str, method: &str, path: &str, token: Option<&str>) -> Result<Answer, Error> {
    let host = admin.trim_start_matches("http://").trim_end_matches('/');
    let unreachable = |why: String| {
        Error::Other(format!(
            "cannot reach the admin API at {host}: {why} (is blueshift running? see --admin)"
        ))
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(3)))
        .timeout_global(Some(Duration::from_secs(10)))
        .user_agent("blueshift-cli")
        .build()
        .into();
    let url = format!("http://{host}{path}");
    let mut req = http::Request::builder().method(method).uri(&url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(())
        .map_err(|_| unreachable("not a host:port address".into()))?;
    let mut resp = agent.run(req).map_err(|e| unreachable(reason(&e)))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| unreachable(reason(&e)))?;
    Ok(Answer { status, body })
}

fn reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".into(),
            _ => io.to_string().to_lowercase(),
        },
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::HostNotFound => "the name does not resolve".into(),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => "not a host:port address".into(),
        ureq::Error::Protocol(_) => "the answer is not HTTP".into(),
        other => other.to_string().to_lowercase(),
    }
}
