//! FastCGI's section of mod_status's `/server-status`.

use std::fmt::Write as _;

use super::{html_escape, human_secs};
use crate::config::Config;
use crate::metrics::{self, AppView};

/// FastCGI's section of mod_status's page: a table, or with `short`
/// (`?auto`) `Key: value` lines.
pub fn mod_status_section(config: &Config, short: bool) -> String {
    let Some(s) = metrics::board().map(|b| b.snapshot()) else {
        return if short {
            String::new()
        } else {
            "<hr><h2>FastCGI</h2><p>Traffic counters are off (FastCgiScoreboard Off).</p>\n".into()
        };
    };
    let _ = config;
    let mut out = String::new();
    if short {
        let sum = |f: &dyn Fn(&AppView) -> u64| s.apps.iter().map(f).sum::<u64>();
        let _ = writeln!(out, "FastCGIApplications: {}", s.apps.len());
        let _ = writeln!(out, "FastCGIRequests: {}", sum(&|a| a.requests));
        let _ = writeln!(out, "FastCGIInFlight: {}", sum(&|a| a.in_flight));
        let _ = writeln!(out, "FastCGIErrors: {}", sum(&|a| a.errors()));
        let _ = writeln!(out, "FastCGIProcesses: {}", sum(&|a| a.processes));
        for (i, a) in s.apps.iter().enumerate() {
            let n = i + 1;
            let path = a.path.replace(['\n', '\r'], " ");
            let _ = writeln!(out, "FastCGIApp{n}Path: {path}");
            let _ = writeln!(out, "FastCGIApp{n}Requests: {}", a.requests);
            let _ = writeln!(out, "FastCGIApp{n}InFlight: {}", a.in_flight);
            let _ = writeln!(out, "FastCGIApp{n}Errors: {}", a.errors());
            let _ = writeln!(out, "FastCGIApp{n}Processes: {}", a.processes);
        }
        return out;
    }
    out.push_str("<hr><h2>FastCGI</h2>\n<table border=\"0\"><tr><th>Application</th><th>Kind</th><th>Requests</th><th>In flight</th><th>Errors</th><th>Processes</th><th>p50</th><th>p99</th></tr>\n");
    for a in &s.apps {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&a.path),
            a.kind.name(),
            a.requests,
            a.in_flight,
            a.errors(),
            a.processes,
            human_secs(a.total.quantile(0.5)),
            human_secs(a.total.quantile(0.99))
        );
    }
    out.push_str("</table>\n");
    out
}
