//! How the rest of blueshift talks to the supervisor: commands over a channel, each answered.

use tokio::sync::{mpsc, oneshot};

/// What an admin action answers: `Ok` or a one-sentence reason it does not apply.
pub type Reply = oneshot::Sender<Result<(), String>>;

/// Operator actions on the rollout.
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

/// Requests to the supervisor.
#[derive(Debug)]
pub enum Command {
    /// Re-read the policy file; `source` names the trigger for the log.
    Reload(&'static str, Reply),
    /// An operator action.
    Act(Action, Reply),
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
    pub async fn call(&self, make: impl FnOnce(Reply) -> Command) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let gone = || "blueshift is shutting down".to_string();
        self.tx.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}
