//! The sections that judge what the models answer: `quality`, and `shadow`, whose copies of
//! live requests are answered by a color and compared with what the clients got.

use marked_yaml::Spanned;

use super::checker::Checker;
use super::file::{self, Text};
use super::{Color, Mirror, Mirroring, Pointer, Quality};

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

/// `shadow:` without it: a rollout's shadow steps mirror with these limits.
pub(super) const MIRRORING: Mirroring = Mirroring {
    max_body: 1 << 20,
    min_agreement: 0.9,
    max_in_flight: 256,
};

/// `shadow:`: the standing mirror, if it names a color, and the limits of every mirror.
pub(super) fn shadow(
    c: &mut Checker,
    s: Option<&Spanned<file::ShadowFile>>,
    colors: &[Color],
    stable: Option<usize>,
    has_shadow_step: bool,
) -> (Option<Mirror>, Mirroring) {
    let Some(s) = s else {
        return (None, MIRRORING);
    };
    let mirroring = Mirroring {
        max_body: c.size("shadow.max_body", s.max_body.as_ref(), MIRRORING.max_body),
        min_agreement: c.share(
            "shadow.min_agreement",
            s.min_agreement.as_ref(),
            MIRRORING.min_agreement,
        ),
        max_in_flight: c.count(
            "shadow.max_in_flight",
            s.max_in_flight.as_ref(),
            MIRRORING.max_in_flight as u32,
            1,
        ) as usize,
    };
    let percent = s
        .percent
        .as_ref()
        .map_or(100, |p| c.percent("shadow.percent", p, 1));
    let color = match &s.color {
        Some(name) => match colors.iter().position(|col| col.name == name.trim()) {
            None => {
                c.report(
                    name.span(),
                    format!("shadow.color: there is no color `{}`", &**name),
                );
                None
            }
            Some(i) if Some(i) == stable => {
                c.report(
                    name.span(),
                    format!(
                        "shadow.color: `{}` is the stable color, which answers the clients; mirror to another one",
                        &**name
                    ),
                );
                None
            }
            Some(i) => Some(i),
        },
        None => {
            if !has_shadow_step {
                c.report(
                    s.span(),
                    "shadow: name the `color` that gets the copies (or give the rollout a shadow step)"
                        .into(),
                );
            }
            None
        }
    };
    (color.map(|color| Mirror { color, percent }), mirroring)
}
