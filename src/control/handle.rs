//! How the rest of blueshift talks to the supervisor: commands over a channel, each answered.

use std::fmt;

use tokio::sync::{mpsc, oneshot};

/// What an action answers: `Ok`, or why it was not taken.
pub type Reply = oneshot::Sender<Result<(), Refused>>;

/// Why an action was not taken, each a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// It does not apply now (HTTP 409): nothing to roll back, already paused, an invalid policy.
    Conflict(String),
    /// It names a route the policy does not have (404).
    NoSuchRoute(String),
    /// It names no route, and the policy has several (400).
    WhichRoute(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Conflict(s) | Refused::NoSuchRoute(s) | Refused::WhichRoute(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Operator actions on a route's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send everything to the stable color.
    Rollback,
    /// Put the candidate at 100%.
    Promote,
    /// Freeze the rollout's step.
    Pause,
    /// Continue a paused rollout or clear rollbacks.
    Resume,
}

impl Action {
    /// How the admin API and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Rollback => "rollback",
            Action::Promote => "promote",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }
}

/// Requests to the supervisor.
#[derive(Debug)]
pub enum Command {
    /// Re-read the policy file; `source` names the trigger for the log.
    Reload(&'static str, Reply),
    /// An operator action on a route (the only one, when the policy has one and none is named).
    Act(Action, Option<String>, Reply),
    /// Re-read the listeners' certificate files.
    Certs(Reply),
}

/// A cloneable handle to the supervisor: send it commands.
#[derive(Clone)]
pub struct Handle {
    pub(super) tx: mpsc::Sender<Command>,
}

impl Handle {
    /// Sends a command and waits for its answer.
    pub async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), Refused> {
        let (tx, rx) = oneshot::channel();
        let gone = || Refused::Conflict("blueshift is shutting down".to_string());
        self.tx.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}
