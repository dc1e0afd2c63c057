//! gRPC as the proxy sees it: a call's status comes in the `grpc-status` trailer (or header, for
//! a trailers-only answer), whatever the HTTP status; some of them mean the model failed.

use http::HeaderMap;

/// The status names, by code (gRPC's `Code` enum).
pub const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The code for a status outside the known ones (counted as `UNKNOWN`).
const UNKNOWN: u8 = 2;

/// Whether an answer is a gRPC answer, by its content type.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"))
}

/// The `grpc-status` in these headers or trailers, if any (unknown numbers read as UNKNOWN).
pub fn status(headers: &HeaderMap) -> Option<u8> {
    let v = headers.get("grpc-status")?.to_str().ok()?;
    Some(
        v.trim()
            .parse::<u8>()
            .ok()
            .filter(|c| usize::from(*c) < NAMES.len())
            .unwrap_or(UNKNOWN),
    )
}

/// Whether a call that ended with `code` failed on the model's side, like a 5xx: UNKNOWN,
/// DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS.
pub fn is_error(code: u8) -> bool {
    matches!(code, 2 | 4 | 13 | 14 | 15)
}

/// The code of a call the client cancelled.
const CANCELLED: u8 = 1;

/// The status a call ended with: what the trailers or headers said, else, when the stream ended
/// without one, CANCELLED if the client went away (as the client sees it; not the model's
/// failure) and UNKNOWN if not (a broken call).
pub fn final_status(seen: Option<u8>, client_left: bool) -> u8 {
    seen.unwrap_or(if client_left { CANCELLED } else { UNKNOWN })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", status.parse().unwrap());
        h
    }

    #[test]
    fn statuses_read_and_judge_as_the_contract_says() {
        assert_eq!(status(&headers("0")), Some(0));
        assert_eq!(status(&headers("13")), Some(13));
        assert_eq!(status(&headers("99")), Some(UNKNOWN));
        assert_eq!(status(&HeaderMap::new()), None);
        let errors: Vec<&str> = (0..17u8)
            .filter(|c| is_error(*c))
            .map(|c| NAMES[usize::from(c)])
            .collect();
        assert_eq!(
            errors,
            [
                "UNKNOWN",
                "DEADLINE_EXCEEDED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS"
            ]
        );
        assert_eq!(final_status(None, false), UNKNOWN);
        assert_eq!(final_status(None, true), CANCELLED);
        assert!(!is_error(CANCELLED));
        // What the model said stands, whoever left first.
        assert_eq!(final_status(Some(13), true), 13);
        let mut grpc = HeaderMap::new();
        grpc.insert("content-type", "application/grpc+proto".parse().unwrap());
        assert!(is_grpc(&grpc) && !is_grpc(&HeaderMap::new()));
    }
}
