//! The serde mirror of the policy YAML: every key the file may hold, nothing more.
//!
//! Values that validation has to point at are [`Spanned`], so a problem found after parsing
//! (an unknown color, a bad duration) still reports the `line:column` it came from. Nothing
//! here is interpreted: durations, addresses and names stay strings until `policy::validate`.

use indexmap::IndexMap;
use marked_yaml::Spanned;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A spanned string, the most common leaf.
pub type Text = Spanned<String>;

/// The whole policy file. Without `routes`, its per-model keys (`colors` to `rollout`) are the
/// one route named `default`; with `routes`, they belong in each route instead.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub listen: Option<Spanned<Listen>>,
    pub admin: Option<Text>,
    pub routing: Option<Spanned<RoutingFile>>,
    pub routes: Option<Spanned<Vec<Spanned<RouteFile>>>>,
    pub colors: Option<Spanned<IndexMap<Text, ColorFile>>>,
    pub stable: Option<Text>,
    pub split: Option<Spanned<IndexMap<Text, Spanned<i64>>>>,
    pub affinity: Option<Spanned<AffinityFile>>,
    pub override_header: Option<Text>,
    pub health: Option<HealthFile>,
    pub rollback: Option<Spanned<RollbackFile>>,
    pub rollout: Option<Spanned<RolloutFile>>,
    pub timeouts: Option<TimeoutsFile>,
    pub quality: Option<Spanned<QualityFile>>,
    pub shadow: Option<Spanned<ShadowFile>>,
    pub state_file: Option<Text>,
    pub access_log: Option<Spanned<bool>>,
}

/// `routing:`: how a request body's model field is read for `match.model`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    pub model_field: Option<Text>,
    pub max_body: Option<Text>,
}

/// One entry of `routes:`: a name, what it matches, and everything that is per model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub name: Option<Text>,
    #[serde(rename = "match")]
    pub matches: Option<Spanned<MatchFile>>,
    pub colors: Option<Spanned<IndexMap<Text, ColorFile>>>,
    pub stable: Option<Text>,
    pub split: Option<Spanned<IndexMap<Text, Spanned<i64>>>>,
    pub affinity: Option<Spanned<AffinityFile>>,
    pub override_header: Option<Text>,
    pub rollback: Option<Spanned<RollbackFile>>,
    pub rollout: Option<Spanned<RolloutFile>>,
    pub quality: Option<Spanned<QualityFile>>,
    pub shadow: Option<Spanned<ShadowFile>>,
}

/// A route's `match:`; every key given must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchFile {
    pub host: Option<Text>,
    pub path_prefix: Option<Text>,
    pub headers: Option<Spanned<IndexMap<Text, Text>>>,
    pub model: Option<Text>,
}

/// `listen` takes one entry or a list of them; an entry is `host:port` or `{addr, tls}`.
#[derive(Debug)]
pub struct Listen(pub Vec<Spanned<ListenEntry>>);

/// One listener as written.
#[derive(Debug)]
pub enum ListenEntry {
    /// `host:port`: plain HTTP/1.1 and h2c.
    Addr(String),
    /// `{addr, tls}`.
    Full(Box<ListenerFile>),
}

/// A listener written as a map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub addr: Text,
    pub tls: Option<Spanned<ListenerTlsFile>>,
}

/// A listener's certificate and key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsFile {
    pub cert: Text,
    pub key: Text,
}

impl<'de> Deserialize<'de> for ListenEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ListenEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("host:port or a map with addr and tls")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ListenEntry, E> {
                Ok(ListenEntry::Addr(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ListenEntry, A::Error> {
                ListenerFile::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|f| ListenEntry::Full(Box::new(f)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Listen;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a listener or a list of listeners")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Listen, E> {
                let entry = ListenEntry::Addr(v.to_owned());
                Ok(Listen(vec![Spanned::new(
                    marked_yaml::Span::new_blank(),
                    entry,
                )]))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Listen, A::Error> {
                let entry = ListenerFile::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let entry = ListenEntry::Full(Box::new(entry));
                Ok(Listen(vec![Spanned::new(
                    marked_yaml::Span::new_blank(),
                    entry,
                )]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listen, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = seq.next_element::<Spanned<ListenEntry>>()? {
                    out.push(entry);
                }
                Ok(Listen(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One color: a pool of backends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColorFile {
    pub backends: Option<Spanned<Vec<BackendFile>>>,
    pub protocol: Option<Text>,
    pub tls: Option<Spanned<UpstreamTlsFile>>,
    pub health: Option<HealthFile>,
}

/// A color's `tls:`, for protocols `https` and `h2`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    pub sni: Option<Text>,
    pub ca: Option<Text>,
}

/// One backend of a color.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    pub addr: Text,
    pub weight: Option<Spanned<i64>>,
}

/// `affinity:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffinityFile {
    pub cookie: Option<Text>,
    pub max_age: Option<Text>,
    pub header: Option<Text>,
}

/// `health:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    pub path: Option<Text>,
    pub interval: Option<Text>,
    pub timeout: Option<Text>,
    pub healthy_after: Option<Spanned<i64>>,
    pub unhealthy_after: Option<Spanned<i64>>,
    pub grpc: Option<Spanned<bool>>,
    pub service: Option<Text>,
}

/// `rollback:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackFile {
    pub max_error_rate: Option<Spanned<f64>>,
    pub max_p99_latency: Option<Text>,
    pub window: Option<Text>,
    pub min_requests: Option<Spanned<i64>>,
    pub latency: Option<Text>,
}

/// `quality:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityFile {
    pub prediction: Option<Text>,
    pub score: Option<Text>,
    pub max_label_shift: Option<Spanned<f64>>,
    pub max_score_shift: Option<Spanned<f64>>,
    pub max_invalid_rate: Option<Spanned<f64>>,
    pub min_samples: Option<Spanned<i64>>,
    pub max_body: Option<Text>,
}

/// `shadow:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowFile {
    pub color: Option<Text>,
    pub percent: Option<Spanned<i64>>,
    pub max_body: Option<Text>,
    pub min_agreement: Option<Spanned<f64>>,
    pub max_in_flight: Option<Spanned<i64>>,
}

/// `rollout:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutFile {
    pub candidate: Text,
    pub steps: Spanned<Vec<Spanned<StepFile>>>,
}

/// One rollout step: a live weight or a shadow percent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFile {
    pub weight: Option<Spanned<i64>>,
    pub shadow: Option<Spanned<i64>>,
    pub hold: Text,
    pub min_requests: Option<Spanned<i64>>,
}

/// `timeouts:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    pub connect: Option<Text>,
    pub read: Option<Text>,
    pub client_header: Option<Text>,
    pub client_body: Option<Text>,
    pub client_send: Option<Text>,
    pub keepalive: Option<Text>,
}
