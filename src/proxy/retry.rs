//! Whether a request whose attempt failed after it was sent goes again: a pure rule over what
//! the failure was and what the request and its client have done.
//!
//! nginx's `proxy_next_upstream error` is the model: idempotent requests go again, a POST that
//! may have reached the model never does, and neither does a request the model was too slow
//! for (asking again would double its load and the client's wait). Two additions: a client
//! that went away is nobody's to answer, and a POST the model never had whole (a kept-alive
//! connection it closed just as blueshift sent on it) is safe to send again.

use pingora_core::{Error, ErrorSource, ErrorType};

/// A failed attempt, as the rule sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempt {
    /// The connection came from the pool (kept alive since an earlier request).
    pub reused: bool,
    /// The method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS).
    pub idempotent: bool,
    /// The client has sent its whole body.
    pub body_done: bool,
    /// What was forwarded of the body is still held to send again (Pingora keeps 64 KiB).
    pub body_kept: bool,
    /// The client has part of an answer already.
    pub answered: bool,
}

/// What happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The client gets the error.
    No,
    /// Again, the backend not held to blame: a stale kept-alive connection says nothing about
    /// it (the next pick may be any backend of the color, on another connection).
    Again,
    /// Again, elsewhere: a fresh connection that died before answering counts against its
    /// backend, like a refused connect.
    Elsewhere,
}

/// Whether `error` is the client's side: it hung up, stopped reading, or sent a broken body.
/// Nobody waits for the answer, and the model did nothing wrong.
pub fn client_gone(error: &Error) -> bool {
    error.esource() == &ErrorSource::Downstream
}

/// Whether `error` is the client hanging up, the part of [`client_gone`] that is not worth a log
/// line: it closed the connection, a read or write on it failed, or it reset or cancelled its
/// HTTP/2 stream (routine for gRPC deadlines and users who stop a stream). The metrics count
/// these; nginx logs them at info.
pub fn client_hung_up(error: &Error) -> bool {
    client_gone(error)
        && matches!(
            error.etype(),
            ErrorType::ConnectionClosed
                | ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::H2Error
        )
}

/// The rule, for `error` on `attempt`.
pub fn decide(error: &Error, attempt: Attempt) -> Retry {
    if client_gone(error) {
        return Retry::No;
    }
    let timed_out = matches!(
        error.etype(),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout
    );
    // Sending the request failed, or the client has not even sent all of it: the model never
    // had the whole request.
    let never_had_it = !attempt.body_done || error.etype() == &ErrorType::WriteError;
    let replayable = attempt.body_kept && (attempt.idempotent || (attempt.reused && never_had_it));
    match (
        replayable && !timed_out && !attempt.answered,
        attempt.reused,
    ) {
        (false, _) => Retry::No,
        (true, true) => Retry::Again,
        (true, false) => Retry::Elsewhere,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(source: ErrorSource, etype: ErrorType) -> Box<Error> {
        let mut e = Error::new(etype);
        e.esource = source;
        e
    }

    fn up(etype: ErrorType) -> Box<Error> {
        err(ErrorSource::Upstream, etype)
    }

    const GET: Attempt = Attempt {
        reused: false,
        idempotent: true,
        body_done: true,
        body_kept: true,
        answered: false,
    };
    const POST: Attempt = Attempt {
        idempotent: false,
        ..GET
    };

    #[test]
    fn idempotent_requests_go_again_where_the_failure_says() {
        let closed = up(ErrorType::ConnectionClosed);
        assert_eq!(decide(&closed, GET), Retry::Elsewhere);
        let reused = Attempt {
            reused: true,
            ..GET
        };
        assert_eq!(decide(&closed, reused), Retry::Again);
        // Not when the model was too slow, the client has an answer, or the body is gone.
        assert_eq!(decide(&up(ErrorType::ReadTimedout), GET), Retry::No);
        assert_eq!(
            decide(
                &closed,
                Attempt {
                    answered: true,
                    ..GET
                }
            ),
            Retry::No
        );
        assert_eq!(
            decide(
                &closed,
                Attempt {
                    body_kept: false,
                    ..GET
                }
            ),
            Retry::No
        );
    }

    #[test]
    fn a_post_goes_again_only_when_the_model_never_had_it_whole() {
        let read = up(ErrorType::ReadError);
        let write = up(ErrorType::WriteError);
        let stale = Attempt {
            reused: true,
            ..POST
        };
        // Read failed after the whole request went out: the model may have acted on it.
        assert_eq!(decide(&read, stale), Retry::No);
        assert_eq!(decide(&read, POST), Retry::No);
        // Writing it failed, or the client is still sending: it never had it whole.
        assert_eq!(decide(&write, stale), Retry::Again);
        let uploading = Attempt {
            body_done: false,
            ..stale
        };
        assert_eq!(decide(&read, uploading), Retry::Again);
        // On a fresh connection the model is the suspect: a POST is not sent elsewhere.
        assert_eq!(decide(&write, POST), Retry::No);
        // Past what is kept of the body, nothing can go again.
        assert_eq!(
            decide(
                &write,
                Attempt {
                    body_kept: false,
                    ..stale
                }
            ),
            Retry::No
        );
    }

    #[test]
    fn a_client_that_hung_up_is_told_from_other_errors() {
        for etype in [
            ErrorType::ConnectionClosed,
            ErrorType::ReadError,
            ErrorType::WriteError,
            ErrorType::H2Error,
        ] {
            assert!(client_hung_up(&err(ErrorSource::Downstream, etype.clone())));
            // The same failure towards the model is the model's side.
            assert!(!client_hung_up(&err(ErrorSource::Upstream, etype)));
        }
        // A client too slow, or a request Pingora refused, is still worth a line.
        assert!(!client_hung_up(&err(
            ErrorSource::Downstream,
            ErrorType::ReadTimedout
        )));
        assert!(!client_hung_up(&err(
            ErrorSource::Downstream,
            ErrorType::InvalidHTTPHeader
        )));
    }

    #[test]
    fn a_client_gone_is_never_retried() {
        let gone = err(ErrorSource::Downstream, ErrorType::ConnectionClosed);
        assert_eq!(decide(&gone, GET), Retry::No);
        assert_eq!(
            decide(
                &gone,
                Attempt {
                    reused: true,
                    ..GET
                }
            ),
            Retry::No
        );
    }
}
