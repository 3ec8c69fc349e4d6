//! The status pages (`SetHandler fastcgi-status`): per application its
//! traffic from the scoreboard (requests by outcome, in flight, bytes,
//! latency percentiles), the health of its endpoints and its processes.
//! An HTML page for people (`?refresh=N` reloads it, [`html`]), `?json`
//! with everything ([`json`], with the process manager's answer,
//! [`manager`]), `?prometheus` in the Prometheus text exposition format
//! ([`prometheus`]); and a short section for mod_status's `/server-status`
//! ([`mod_status`]). Pages are rendered here from `metrics`, `config` and
//! the manager's answers; `apache` writes them to the client.

mod escape;
mod html;
mod json;
mod manager;
mod mod_status;
mod prometheus;

use std::time::Duration;

pub use escape::{html_escape, json_str};
pub use mod_status::mod_status_section;

use crate::config::{Config, Server};
use crate::metrics::{self, AppView, Kind};
use crate::pm::{self, control};

/// What the status page's query string asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFormat {
    /// The page, reloading itself every so many seconds.
    Html {
        refresh: Option<u32>,
    },
    Json,
    Prometheus,
}

impl StatusFormat {
    /// `json`, `prometheus` (or `metrics`), `refresh=N`, joined by `&`.
    pub fn from_query(query: Option<&str>) -> StatusFormat {
        let mut refresh = None;
        for word in query.unwrap_or("").split('&') {
            // `?prometheus=` (what a scrape configuration's params give) too.
            match word.split_once('=').map_or(word, |(key, _)| key) {
                "json" => return StatusFormat::Json,
                "prometheus" | "metrics" => return StatusFormat::Prometheus,
                _ => {}
            }
            if let Some(n) = word.strip_prefix("refresh=").and_then(|n| n.parse::<u32>().ok()) {
                refresh = Some(n.clamp(1, 3600));
            }
        }
        StatusFormat::Html { refresh }
    }
}

/// The status page for `config` in `format`, with its content type.
pub fn page(config: &Config, format: StatusFormat) -> (String, &'static str) {
    let snapshot = metrics::board().map(|b| b.snapshot());
    match format {
        StatusFormat::Json => {
            let request = control::Request { op: control::Op::Status, micros: 0, identity: None, path: b"-".to_vec() };
            let control_path = pm::dynamic_dir(config).join(control::CONTROL_NAME);
            let manager = control::ask(&control_path, &request, Duration::from_secs(5));
            (json::doc(config, snapshot.as_ref(), manager), "application/json")
        }
        StatusFormat::Prometheus => {
            (prometheus::doc(config, snapshot.as_ref()), "text/plain; version=0.0.4; charset=utf-8")
        }
        StatusFormat::Html { refresh } => (html::doc(config, snapshot.as_ref(), refresh), "text/html; charset=utf-8"),
    }
}

fn kind(s: &Server) -> &'static str {
    if s.spawn.is_some() {
        "static"
    } else {
        "external"
    }
}

/// Seconds as the page shows them: "230 ms", "1.50 s", "–" for none.
fn human_secs(s: Option<f64>) -> String {
    match s {
        None => "–".to_string(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn json_f64(v: Option<f64>) -> String {
    v.map_or_else(|| "null".to_string(), |v| format!("{v:.6}"))
}

/// A histogram bound, in seconds, as Prometheus and the JSON write it.
fn le(us: u64) -> String {
    format!("{}", us as f64 / 1e6)
}

/// The application's `-max-in-flight` (0: none): its server's, or
/// FastCgiConfig's for a dynamic one.
fn limit(config: &Config, a: &AppView) -> u32 {
    match a.kind {
        Kind::Static | Kind::External => {
            config.servers.iter().find(|s| s.path == a.path).map_or(0, |s| s.options.max_in_flight)
        }
        Kind::Dynamic | Kind::Overflow => config.dynamic.app.max_in_flight,
    }
}

fn identity_text(a: &AppView) -> Option<String> {
    a.identity.map(|(u, g)| format!("{u}:{g}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings() {
        assert_eq!(StatusFormat::from_query(None), StatusFormat::Html { refresh: None });
        assert_eq!(StatusFormat::from_query(Some("json")), StatusFormat::Json);
        assert_eq!(StatusFormat::from_query(Some("prometheus")), StatusFormat::Prometheus);
        assert_eq!(StatusFormat::from_query(Some("prometheus=")), StatusFormat::Prometheus);
        assert_eq!(StatusFormat::from_query(Some("refresh=2&json")), StatusFormat::Json);
        assert_eq!(StatusFormat::from_query(Some("refresh=5")), StatusFormat::Html { refresh: Some(5) });
        assert_eq!(StatusFormat::from_query(Some("refresh=0")), StatusFormat::Html { refresh: Some(1) });
        assert_eq!(StatusFormat::from_query(Some("refresh=x")), StatusFormat::Html { refresh: None });
    }

    #[test]
    fn labels_and_units() {
        assert_eq!(le(2_500), "0.0025");
        assert_eq!(le(1_000_000), "1");
        assert_eq!(human_secs(Some(0.2251)), "225 ms");
        assert_eq!(human_secs(None), "–");
        assert_eq!(human_bytes(2048), "2.0 KiB");
    }
}
