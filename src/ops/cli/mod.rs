//! The operator's commands that are not the server itself: `check`, `status` and the admin
//! actions, the last two through the admin API.

use std::path::Path;

pub mod client;
mod render;
mod summary;

pub use render::{render, Style};
pub use summary::summary;

use crate::ops::status::Status;
use crate::{config, Error};

/// `blueshift check FILE`: prints a summary of a valid policy (and its warnings), or every
/// problem.
pub fn check(path: &Path) -> Result<(), Error> {
    let checked = config::read_checked(path).map_err(|problems| {
        let n = problems.0.len();
        let mut e = Error::Policy {
            path: path.to_path_buf(),
            problems,
        }
        .to_string();
        e.push_str(&format!(
            "\n{} is invalid: {n} problem{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        ));
        Error::Other(e)
    })?;
    print!("{}", summary(path, &checked.policy));
    for w in &checked.warnings {
        match w.at {
            Some((line, col)) => {
                println!("{}:{line}:{col}: warning: {}", path.display(), w.message)
            }
            None => println!("{}: warning: {}", path.display(), w.message),
        }
    }
    Ok(())
}

/// Default admin address when neither `--admin` nor `BLUESHIFT_ADMIN` says otherwise.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

/// `blueshift status`: the live state as a table (every route, or the one named), or the raw JSON.
pub fn status(admin: &str, raw_json: bool, route: Option<&str>) -> Result<(), Error> {
    let a = client::call(admin, "GET", "/status", None)?;
    if a.status != 200 {
        return Err(Error::Other(server_reason(&a)));
    }
    if raw_json {
        print!("{}", a.body);
        return Ok(());
    }
    let doc = parse(admin, &a.body)?;
    if let Some(name) = route.filter(|n| !doc.routes.contains_key(*n)) {
        let names: Vec<&str> = doc.routes.keys().map(String::as_str).collect();
        return Err(Error::Other(format!(
            "there is no route `{name}` (the routes: {})",
            names.join(", ")
        )));
    }
    show(admin, &doc, route);
    Ok(())
}

/// Prints the table for a `/status` document (every route, or the one named).
fn show(admin: &str, doc: &Status, route: Option<&str>) {
    let now = std::time::SystemTime::now();
    print!("{}", render(admin, doc, route, Style::detect(), now));
}

fn parse(admin: &str, body: &str) -> Result<Status, Error> {
    serde_json::from_str(body).map_err(|_| {
        Error::Other(format!(
            "the admin API at {admin} did not answer with blueshift status JSON"
        ))
    })
}

/// `blueshift rollback|promote|pause|resume|reload [--route NAME]`: POSTs the action, prints the
/// new state of that route.
pub fn action(admin: &str, name: &str, route: Option<&str>) -> Result<(), Error> {
    let token = std::env::var(crate::ops::admin::TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty());
    let path = match route {
        Some(r) => format!("/{name}?route={r}"),
        None => format!("/{name}"),
    };
    let a = client::call(admin, "POST", &path, token.as_deref())?;
    if a.status != 200 {
        // The API asks for `?route=`; on the command line that is `--route`.
        let why = server_reason(&a).replace("?route=NAME", "--route NAME");
        return Err(Error::Other(format!("{name} refused: {why}")));
    }
    let doc = parse(admin, &a.body)?;
    show(admin, &doc, route);
    Ok(())
}

/// The server's `{"error": "..."}`, or the status code if there is none.
fn server_reason(a: &client::Answer) -> String {
    serde_json::from_str::<serde_json::Value>(&a.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("the admin API answered {}", a.status))
}
