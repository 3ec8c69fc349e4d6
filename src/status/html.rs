//! The page for people: a tile per figure, a card per application.

use std::fmt::Write as _;

use super::{html_escape, human_bytes, human_secs, identity_text, kind};
use crate::config::Config;
use crate::metrics::{AppView, Kind, Outcome as Cause, Snapshot};

const STYLE: &str = "\
:root{--bg:#f6f7f9;--card:#fff;--ink:#1c2330;--muted:#667085;--line:#e4e7ec;--ok:#1a7f37;--warn:#b54708;--bad:#c01c28}\
*{box-sizing:border-box}\
body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:var(--bg);color:var(--ink)}\
header{padding:16px 20px;background:#1c2330;color:#fff}\
header h1{margin:0;font-size:20px}\
header p{margin:4px 0 0;color:#c8ced8;font-size:13px}\
header a{color:#9cc3ff}\
main{padding:12px;max-width:1200px;margin:0 auto}\
section.app{background:var(--card);border:1px solid var(--line);border-radius:10px;margin:12px 0;padding:14px 16px}\
section.app h2{margin:0 0 10px;font-size:16px;word-break:break-all}\
.kind{display:inline-block;font-size:11px;text-transform:uppercase;letter-spacing:.04em;padding:2px 7px;border-radius:9px;background:#e8eefc;color:#2d4ea2;margin-right:8px;vertical-align:2px}\
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(104px,1fr));gap:8px;margin:0 0 12px}\
.tile{border:1px solid var(--line);border-radius:8px;padding:8px 10px}\
.tile .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}\
.tile .l{font-size:12px;color:var(--muted)}\
.tile.bad .v{color:var(--bad)}\
h3{font-size:13px;margin:12px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);white-space:nowrap}\
th{font-weight:600;color:var(--muted);font-size:12px}\
td.n{text-align:right}\
tr.zero td{color:#b0b7c3}\
.up{color:var(--ok);font-weight:600}.failed{color:var(--warn);font-weight:600}.down{color:var(--bad);font-weight:600}\
.note{color:var(--muted);font-size:13px}\
ul.outcomes{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:6px}\
ul.outcomes li{border-radius:14px;padding:3px 10px;font-size:13px;background:#eef1f5}\
ul.outcomes li.ok{background:#e6f4ea;color:#14532d}ul.outcomes li.bad{background:#fde8e8;color:#8a1c1c}ul.outcomes li.warn{background:#fff4e5;color:#7a3e00}\
table.overview td a{color:inherit}\
table.overview td:first-child{white-space:normal;word-break:break-all;min-width:160px}\
@media (max-width:600px){main{padding:6px}section.app{padding:10px 10px}.tile{padding:6px 8px}.tile .v{font-size:17px}header{padding:12px 14px}}\
";

fn tile(out: &mut String, metric: &str, value: &str, label: &str, bad: bool) {
    let _ = write!(
        out,
        "<div class=\"tile{}\" data-metric=\"{metric}\"><div class=\"v\">{}</div><div class=\"l\">{label}</div></div>",
        if bad { " bad" } else { "" },
        html_escape(value)
    );
}

fn html_app(out: &mut String, a: &AppView, now: u64, index: usize, max: u32) {
    let id = identity_text(a).map(|i| format!(" <span class=\"note\">as {i}</span>")).unwrap_or_default();
    let _ = write!(
        out,
        "<section class=\"app\" id=\"app{index}\" data-app=\"{}\"><h2><span class=\"kind\">{}</span>{}{id}</h2>\n<div class=\"tiles\">",
        html_escape(&a.path),
        a.kind.name(),
        html_escape(&a.path)
    );
    let errors = a.errors();
    tile(out, "requests", &a.requests.to_string(), "requests", false);
    tile(out, "in_flight", &a.in_flight.to_string(), "in flight", false);
    let pct =
        if a.requests > 0 { format!(" · {:.1} %", errors as f64 * 100.0 / a.requests as f64) } else { String::new() };
    tile(out, "errors", &errors.to_string(), &format!("errors{pct}"), errors > 0);
    tile(out, "p50", &human_secs(a.total.quantile(0.5)), "p50 latency", false);
    tile(out, "p90", &human_secs(a.total.quantile(0.9)), "p90 latency", false);
    tile(out, "p99", &human_secs(a.total.quantile(0.99)), "p99 latency", false);
    tile(out, "ttfb_p50", &human_secs(a.ttfb.quantile(0.5)), "first byte p50", false);
    tile(out, "bytes_out", &human_bytes(a.bytes_out), "sent", false);
    tile(out, "bytes_in", &human_bytes(a.bytes_in), "received", false);
    if a.received > 0 {
        let label = format!("uploads received first ({} bodies)", a.received);
        tile(out, "received", &human_bytes(a.received_bytes), &label, false);
    }
    if max > 0 {
        let p = &a.places;
        tile(out, "places", &format!("{} / {max}", p.taken), "in flight of -max-in-flight", false);
        tile(out, "waiting", &p.waiting.to_string(), "waiting for a place", false);
        let refused: u64 = p.refusals.iter().sum();
        tile(out, "refused", &refused.to_string(), "refused at the limit (503)", refused > 0);
    }
    if a.held > 0 {
        let label = format!("held for slow clients ({} responses)", a.held);
        tile(out, "held", &human_bytes(a.held_bytes), &label, false);
    }
    if a.kind != Kind::External {
        tile(out, "processes", &a.processes.to_string(), "processes", false);
    }
    out.push_str("</div>\n<h3>Outcomes</h3><ul class=\"outcomes\">");
    let mut shown = 0;
    for &o in &Cause::ALL {
        let n = a.outcome(o);
        if n == 0 {
            continue;
        }
        shown += 1;
        let status = match o {
            Cause::App2xx | Cause::App3xx | Cause::App4xx | Cause::App5xx => "",
            Cause::ConnectRefused | Cause::ConnectTimeout | Cause::Refused => " → 503",
            Cause::IdleTimeout => " → 504",
            Cause::IncompleteHeaders | Cause::BadHeaders => " → 500",
            Cause::ProtocolError => " → 502",
            Cause::ClientGone | Cause::GatewayError => "",
        };
        let class = if o.is_error() {
            "bad"
        } else if o == Cause::ClientGone {
            "warn"
        } else {
            "ok"
        };
        let _ = write!(
            out,
            "<li class=\"{class}\" data-outcome=\"{}\"><b>{n}</b> {}{status}</li>",
            o.name(),
            o.name().replace('_', " ")
        );
    }
    if shown == 0 {
        out.push_str("<li class=\"none\">no requests yet</li>");
    }
    out.push_str("</ul>\n");
    if !a.endpoints.is_empty() {
        out.push_str("<h3>Endpoints</h3><div class=\"scroll\"><table class=\"endpoints\"><tr><th>endpoint</th><th>health</th><th>requests</th><th>in flight</th><th>connect failures</th><th>failovers to it</th><th>last failure</th><th>pool idle</th><th>pool reused</th></tr>\n");
        for e in &a.endpoints {
            let last = if e.last_failure == 0 {
                "never".to_string()
            } else {
                format!("{} s ago", now.saturating_sub(e.last_failure))
            };
            let _ = writeln!(
                out,
                "<tr data-endpoint=\"{name}\" data-health=\"{h}\"><td>{name}{next}</td><td class=\"{h}\">{h}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{last}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                e.requests,
                e.in_flight,
                e.connect_failures,
                e.failovers,
                e.pool_idle,
                e.pool_reused,
                name = html_escape(&e.name),
                h = e.health,
                next = if e.next && a.endpoints.len() > 1 { " <span class=\"note\">(next)</span>" } else { "" },
            );
        }
        out.push_str("</table></div>\n");
    }
    if a.kind != Kind::External {
        let state = if a.backed_off { " · <span class=\"down\">backed off</span>" } else { "" };
        let _ = writeln!(
            out,
            "<h3>Processes</h3><p class=\"note\">{} running · {} started in all · {} quick failures{state}</p>",
            a.processes, a.starts, a.failures
        );
        if !a.process_list.is_empty() {
            out.push_str("<div class=\"scroll\"><table class=\"processes\"><tr><th>pid</th><th>up</th></tr>\n");
            for p in &a.process_list {
                let _ = writeln!(
                    out,
                    "<tr data-pid=\"{}\"><td>{}</td><td>{} s</td></tr>",
                    p.pid,
                    p.pid,
                    now.saturating_sub(p.started)
                );
            }
            out.push_str("</table></div>\n");
        }
    }
    out.push_str("</section>\n");
}

pub(super) fn doc(config: &Config, snapshot: Option<&Snapshot>, refresh: Option<u32>) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut out = String::with_capacity(32 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n");
    if let Some(n) = refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{n}\">");
    }
    let _ = write!(
        out,
        "<title>FastCGI status</title>\n<style>{STYLE}</style></head><body>\n<header><h1>FastCGI status</h1><p>"
    );
    match snapshot {
        Some(s) => {
            let _ = write!(
                out,
                "counters since {} s ago (kept across {} restarts) · process manager pid {} · \
                 <span data-metric=\"spool\">temporary files {} of {} (peak {}, {} refusals)</span> · ",
                now.saturating_sub(s.created),
                s.restarts,
                s.manager_pid,
                super::human_bytes(s.spool_used),
                super::human_bytes(s.spool_budget),
                super::human_bytes(s.spool_peak),
                s.spool_refused
            );
        }
        None => out.push_str("traffic counters are off (FastCgiScoreboard Off) · "),
    }
    let refresh_link = match refresh {
        Some(_) => "<a href=\"?\">stop refreshing</a>",
        None => "<a href=\"?refresh=5\">refresh every 5 s</a>",
    };
    let _ = writeln!(
        out,
        "<a href=\"?json\">JSON</a> · <a href=\"?prometheus\">Prometheus</a> · {refresh_link}</p></header>\n<main>"
    );
    match snapshot {
        Some(s) => {
            if s.apps.is_empty() {
                out.push_str("<p class=\"note\">No FastCGI application is defined or has been requested yet.</p>\n");
            }
            if !s.apps.is_empty() {
                out.push_str("<section class=\"app\"><div class=\"scroll\"><table class=\"overview\"><tr><th>application</th><th>requests</th><th>in flight</th><th>errors</th><th>p50</th><th>p99</th><th>processes</th><th>endpoints up</th></tr>\n");
                for (i, a) in s.apps.iter().enumerate() {
                    let up = a.endpoints.iter().filter(|e| e.health == "up" || e.health == "slow-start").count();
                    let eps =
                        if a.endpoints.is_empty() { "–".to_string() } else { format!("{up}/{}", a.endpoints.len()) };
                    let procs = if a.kind == Kind::External { "–".to_string() } else { a.processes.to_string() };
                    let _ = writeln!(
                        out,
                        "<tr data-row=\"{p}\"><td><a href=\"#app{i}\">{p}</a></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{procs}</td><td class=\"n{}\">{eps}</td></tr>",
                        a.requests,
                        a.in_flight,
                        if a.errors() > 0 { " down" } else { "" },
                        a.errors(),
                        human_secs(a.total.quantile(0.5)),
                        human_secs(a.total.quantile(0.99)),
                        if up < a.endpoints.len() { " failed" } else { "" },
                        p = html_escape(&a.path),
                    );
                }
                out.push_str("</table></div></section>\n");
            }
            for (i, a) in s.apps.iter().enumerate() {
                html_app(&mut out, a, now, i, super::limit(config, a));
            }
            if s.overflow > 0 {
                let _ = writeln!(out, "<p class=\"note\">{} requests of dynamic applications found every one of the {} slots taken (FastCgiScoreboard) and are counted together.</p>", s.overflow, s.app_slots);
            }
        }
        None => {
            for srv in &config.servers {
                let eps: Vec<String> = srv.endpoints().map(|e| html_escape(&e.to_string())).collect();
                let _ = writeln!(
                    out,
                    "<section class=\"app\" data-app=\"{p}\"><h2><span class=\"kind\">{}</span>{p}</h2><p class=\"note\">{}</p></section>",
                    kind(srv),
                    eps.join(", "),
                    p = html_escape(&srv.path)
                );
            }
        }
    }
    out.push_str("</main></body></html>\n");
    out
}
