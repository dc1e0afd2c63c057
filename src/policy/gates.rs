//! The sections that judge what the models answer: `quality`.

use marked_yaml::Spanned;

use super::checker::Checker;
use super::file::{self, Text};
use super::{Pointer, Quality};

/// Default `quality.max_body`: a JSON prediction or a short token stream fits.
const MAX_BODY: usize = 256 * 1024;

fn pointer(c: &mut Checker, key: &str, v: &Text) -> Option<Pointer> {
    match Pointer::parse(v.trim()) {
        Ok(p) => Some(p),
        Err(why) => {
            c.report(v.span(), format!("{key}: `{}` {why}", &**v));
            None
        }
    }
}

/// `quality:`; `None` when it has problems (they are reported).
pub(super) fn quality(c: &mut Checker, q: &Spanned<file::QualityFile>) -> Option<Quality> {
    let prediction = match &q.prediction {
        Some(v) => pointer(c, "quality.prediction", v),
        None => {
            c.report(
                q.span(),
                "quality: `prediction` is required (a JSON Pointer to the label, e.g. /prediction)"
                    .into(),
            );
            None
        }
    };
    // Every check runs before any `?`, so all of a section's problems are reported at once.
    let score = q.score.as_ref().map(|v| pointer(c, "quality.score", v));
    let min_samples = c.count("quality.min_samples", q.min_samples.as_ref(), 100, 1);
    let max_label_shift = c.share("quality.max_label_shift", q.max_label_shift.as_ref(), 0.2);
    let max_score_shift = c.share("quality.max_score_shift", q.max_score_shift.as_ref(), 0.1);
    let max_invalid_rate = c.share(
        "quality.max_invalid_rate",
        q.max_invalid_rate.as_ref(),
        0.05,
    );
    let max_body = c.size("quality.max_body", q.max_body.as_ref(), MAX_BODY);
    let score = match score {
        Some(None) => return None,
        Some(Some(p)) => Some(p),
        None => None,
    };
    Some(Quality {
        prediction: prediction?,
        score,
        max_label_shift,
        max_score_shift,
        max_invalid_rate,
        min_samples: u64::from(min_samples),
        max_body,
    })
}
