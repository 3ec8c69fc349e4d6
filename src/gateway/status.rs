//! The status page (`SetHandler fastcgi-status`): per application its
//! traffic from the scoreboard (requests by outcome, in flight, bytes,
//! latency percentiles), the health of its endpoints and its processes.
//! An HTML page for people (`?refresh=N` reloads it), `?json` with
//! everything, `?prometheus` in the Prometheus text exposition format; and
//! a short section for mod_status's `/server-status`.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Client, Outcome};
use crate::config::{Config, Server};
use crate::metrics::{self, layout::BOUNDS_US, AppView, Histogram, Kind, Outcome as Cause, Snapshot};
use crate::pm::{self, control, html_escape, json_str};

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

/// Writes the status page for `config` to `client`.
pub fn status_page(client: &mut dyn Client, config: &Config, format: StatusFormat) -> Outcome {
    let snapshot = metrics::board().map(|b| b.snapshot());
    let (doc, content_type) = match format {
        StatusFormat::Json => {
            let request = control::Request { op: control::Op::Status, micros: 0, identity: None, path: b"-".to_vec() };
            let control_path = pm::dynamic_dir(config).join(control::CONTROL_NAME);
            let manager = control::ask(&control_path, &request, Duration::from_secs(5));
            (json_doc(config, snapshot.as_ref(), manager), "application/json")
        }
        StatusFormat::Prometheus => (prometheus(snapshot.as_ref()), "text/plain; version=0.0.4; charset=utf-8"),
        StatusFormat::Html { refresh } => (html_doc(config, snapshot.as_ref(), refresh), "text/html; charset=utf-8"),
    };
    client.set_content_type(content_type);
    // A client that went away needs nothing more.
    client.queue(doc.as_bytes());
    let _ = client.pass(true);
    Outcome::Sent
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

fn identity_text(a: &AppView) -> Option<String> {
    a.identity.map(|(u, g)| format!("{u}:{g}"))
}

// ---- JSON ----

fn json_hist(h: &Histogram) -> String {
    let mut cumulative = 0;
    let buckets: Vec<String> = h
        .buckets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            cumulative += n;
            let bound = BOUNDS_US.get(i).map_or_else(|| "\"+Inf\"".to_string(), |&b| le(b));
            format!("{{\"le\":{bound},\"count\":{cumulative}}}")
        })
        .collect();
    format!(
        "{{\"count\":{},\"sum_seconds\":{:.6},\"p50\":{},\"p90\":{},\"p99\":{},\"buckets\":[{}]}}",
        h.count(),
        h.sum_us as f64 / 1e6,
        json_f64(h.quantile(0.5)),
        json_f64(h.quantile(0.9)),
        json_f64(h.quantile(0.99)),
        buckets.join(",")
    )
}

fn json_app(a: &AppView) -> String {
    let outcomes: Vec<String> = Cause::ALL.iter().map(|&o| format!("\"{}\":{}", o.name(), a.outcome(o))).collect();
    let endpoints: Vec<String> = a
        .endpoints
        .iter()
        .map(|e| {
            format!(
                "{{\"name\":{},\"health\":\"{}\",\"next\":{},\"requests\":{},\"in_flight\":{},\"connect_failures\":{},\"connect_timeouts\":{},\"failovers\":{},\"last_failure\":{},\"pool_idle\":{},\"pool_reused\":{},\"capacity\":{}}}",
                json_str(&e.name),
                e.health,
                e.next,
                e.requests,
                e.in_flight,
                e.connect_failures,
                e.connect_timeouts,
                e.failovers,
                e.last_failure,
                e.pool_idle,
                e.pool_reused,
                e.capacity.map_or_else(|| "null".to_string(), |n| n.to_string())
            )
        })
        .collect();
    let procs: Vec<String> =
        a.process_list.iter().map(|p| format!("{{\"pid\":{},\"started\":{}}}", p.pid, p.started)).collect();
    format!(
        "{{\"path\":{},\"kind\":\"{}\",\"identity\":{},\"requests\":{},\"in_flight\":{},\"errors\":{},\"outcomes\":{{{}}},\"bytes_in\":{},\"bytes_out\":{},\"held\":{{\"responses\":{},\"bytes\":{},\"file_bytes\":{},\"paced\":{}}},\"duration\":{},\"ttfb\":{},\"endpoints\":[{}],\"processes\":{{\"count\":{},\"starts\":{},\"failures\":{},\"backed_off\":{},\"list\":[{}]}}}}",
        json_str(&a.path),
        a.kind.name(),
        identity_text(a).map_or_else(|| "null".to_string(), |i| json_str(&i)),
        a.requests,
        a.in_flight,
        a.errors(),
        outcomes.join(","),
        a.bytes_in,
        a.bytes_out,
        a.held,
        a.held_bytes,
        a.held_file_bytes,
        a.paced,
        json_hist(&a.total),
        json_hist(&a.ttfb),
        endpoints.join(","),
        a.processes,
        a.starts,
        a.failures,
        a.backed_off,
        procs.join(",")
    )
}

fn json_doc(config: &Config, snapshot: Option<&Snapshot>, manager: Result<Vec<u8>, String>) -> String {
    let defined: Vec<String> = config
        .servers
        .iter()
        .map(|s| {
            let eps: Vec<String> = s.endpoints().map(|e| json_str(&e.to_string())).collect();
            format!(
                "{{\"path\":{},\"kind\":\"{}\",\"endpoints\":[{}],\"keep_conn\":{}}}",
                json_str(&s.path),
                kind(s),
                eps.join(","),
                s.options.keep_conn
            )
        })
        .collect();
    let manager = match manager {
        Ok(doc) => String::from_utf8_lossy(&doc).into_owned(),
        Err(why) => format!("{{\"error\":{}}}", json_str(&why)),
    };
    let (scoreboard, apps) = match snapshot {
        Some(s) => (
            format!(
                "{{\"enabled\":true,\"created\":{},\"restarts\":{},\"manager_pid\":{},\"overflow\":{},\"dynamic_slots_used\":{}}}",
                s.created, s.restarts, s.manager_pid, s.overflow, s.dynamic_slots_used
            ),
            s.apps.iter().map(json_app).collect::<Vec<_>>(),
        ),
        None => ("{\"enabled\":false}".to_string(), Vec::new()),
    };
    format!(
        "{{\"scoreboard\":{scoreboard},\"applications\":[{}],\"defined\":[{}],\"manager\":{manager}}}\n",
        apps.join(","),
        defined.join(",")
    )
}

// ---- Prometheus ----

/// A label value, escaped as the exposition format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn app_labels(a: &AppView) -> String {
    match identity_text(a) {
        Some(id) => format!("app=\"{}\",identity=\"{id}\"", label(&a.path)),
        None => format!("app=\"{}\"", label(&a.path)),
    }
}

/// The text exposition format (version 0.0.4), every family with HELP and TYPE.
fn prometheus(snapshot: Option<&Snapshot>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let Some(s) = snapshot else {
        out.push_str("# The FastCGI scoreboard is off (FastCgiScoreboard Off).\n");
        return out;
    };
    let family = |out: &mut String, name: &str, kind: &str, help: &str, samples: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        samples(out);
    };
    let per_app = |out: &mut String, name: &str, value: &dyn Fn(&AppView) -> u64| {
        for a in &s.apps {
            let _ = writeln!(out, "{name}{{{}}} {}", app_labels(a), value(a));
        }
    };
    family(&mut out, "fastcgi_requests_total", "counter", "Requests routed to the application, by outcome: the application's status class (2xx, 3xx, 4xx, 5xx) or why the gateway answered itself.", &mut |out| {
        for a in &s.apps {
            for &o in &Cause::ALL {
                let _ = writeln!(out, "fastcgi_requests_total{{{},outcome=\"{}\"}} {}", app_labels(a), o.name(), a.outcome(o));
            }
        }
    });
    family(&mut out, "fastcgi_requests_in_flight", "gauge", "Requests being served now.", &mut |out| {
        per_app(out, "fastcgi_requests_in_flight", &|a| a.in_flight)
    });
    family(
        &mut out,
        "fastcgi_request_body_bytes_total",
        "counter",
        "Request body bytes read from clients.",
        &mut |out| per_app(out, "fastcgi_request_body_bytes_total", &|a| a.bytes_in),
    );
    family(
        &mut out,
        "fastcgi_response_body_bytes_total",
        "counter",
        "Response body bytes sent to clients.",
        &mut |out| per_app(out, "fastcgi_response_body_bytes_total", &|a| a.bytes_out),
    );
    for (name, help, pick) in [
        ("fastcgi_held_responses_total", "Responses that waited in a backlog for a slow client.", 0),
        ("fastcgi_held_bytes_total", "Response bytes that waited in a backlog for a slow client.", 1),
        ("fastcgi_held_file_bytes_total", "Response bytes that waited in a temporary file.", 2),
        ("fastcgi_paced_responses_total", "Held responses that reached FastCgiResponseSpoolMax.", 3),
    ] {
        let value = move |a: &AppView| [a.held, a.held_bytes, a.held_file_bytes, a.paced][pick];
        family(&mut out, name, "counter", help, &mut |out| per_app(out, name, &value));
    }
    for (name, help, pick) in [
        ("fastcgi_request_duration_seconds", "Time from the start of the request to its end.", 0),
        (
            "fastcgi_time_to_first_byte_seconds",
            "Time from the start of the request to the application's first byte.",
            1,
        ),
    ] {
        family(&mut out, name, "histogram", help, &mut |out| {
            for a in &s.apps {
                let h = if pick == 0 { &a.total } else { &a.ttfb };
                let labels = app_labels(a);
                let mut cumulative = 0;
                for (i, n) in h.buckets.iter().enumerate() {
                    cumulative += n;
                    let bound = BOUNDS_US.get(i).map_or_else(|| "+Inf".to_string(), |&b| le(b));
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
                }
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_us as f64 / 1e6);
                let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
            }
        });
    }
    family(&mut out, "fastcgi_processes", "gauge", "Application processes the process manager runs.", &mut |out| {
        per_app(out, "fastcgi_processes", &|a| a.processes)
    });
    family(
        &mut out,
        "fastcgi_process_starts_total",
        "counter",
        "Application processes started (first starts and restarts).",
        &mut |out| per_app(out, "fastcgi_process_starts_total", &|a| a.starts),
    );
    family(&mut out, "fastcgi_process_failures", "gauge", "Quick exits counted towards the back-off.", &mut |out| {
        per_app(out, "fastcgi_process_failures", &|a| a.failures)
    });
    family(
        &mut out,
        "fastcgi_process_backed_off",
        "gauge",
        "1 while starts of the application are refused after repeated failures.",
        &mut |out| per_app(out, "fastcgi_process_backed_off", &|a| u64::from(a.backed_off)),
    );
    family(
        &mut out,
        "fastcgi_process_start_time_seconds",
        "gauge",
        "Unix time each application process started.",
        &mut |out| {
            for a in &s.apps {
                for p in &a.process_list {
                    let _ = writeln!(
                        out,
                        "fastcgi_process_start_time_seconds{{{},pid=\"{}\"}} {}",
                        app_labels(a),
                        p.pid,
                        p.started
                    );
                }
            }
        },
    );
    type EpPick = fn(&metrics::EndpointView) -> u64;
    let endpoint_families: [(&str, &str, &str, EpPick); 9] = [
        ("fastcgi_endpoint_requests_total", "counter", "Requests that reached the endpoint.", |e| e.requests),
        ("fastcgi_endpoint_in_flight", "gauge", "Requests on the endpoint now.", |e| e.in_flight),
        (
            "fastcgi_endpoint_connect_failures_total",
            "counter",
            "Connections the endpoint did not accept (refused, missing, timed out).",
            |e| e.connect_failures,
        ),
        ("fastcgi_endpoint_connect_timeouts_total", "counter", "Connections that timed out (-appConnTimeout).", |e| {
            e.connect_timeouts
        }),
        (
            "fastcgi_endpoint_failovers_total",
            "counter",
            "Requests that reached the endpoint after an earlier one failed.",
            |e| e.failovers,
        ),
        (
            "fastcgi_endpoint_up",
            "gauge",
            "1 when the endpoint's last connect succeeded (or none failed), else 0.",
            |e| u64::from(e.health == "up" || e.health == "slow-start"),
        ),
        (
            "fastcgi_endpoint_last_failure_timestamp_seconds",
            "gauge",
            "Unix time of the endpoint's last failed connect (0: never).",
            |e| e.last_failure,
        ),
        (
            "fastcgi_pool_idle_connections",
            "gauge",
            "Pooled (-keep-conn) connections idle now, all Apache children together.",
            |e| e.pool_idle,
        ),
        ("fastcgi_pool_reused_total", "counter", "Requests that reused a pooled (-keep-conn) connection.", |e| {
            e.pool_reused
        }),
    ];
    for (name, kind, help, pick) in endpoint_families {
        family(&mut out, name, kind, help, &mut |out| {
            for a in &s.apps {
                for e in &a.endpoints {
                    let _ = writeln!(out, "{name}{{{},endpoint=\"{}\"}} {}", app_labels(a), label(&e.name), pick(e));
                }
            }
        });
    }
    family(
        &mut out,
        "fastcgi_scoreboard_created_timestamp_seconds",
        "gauge",
        "Unix time the counters started (kept across restarts that change no application).",
        &mut |out| {
            let _ = writeln!(out, "fastcgi_scoreboard_created_timestamp_seconds {}", s.created);
        },
    );
    family(
        &mut out,
        "fastcgi_scoreboard_restarts_total",
        "counter",
        "Restarts of Apache the counters were kept across.",
        &mut |out| {
            let _ = writeln!(out, "fastcgi_scoreboard_restarts_total {}", s.restarts);
        },
    );
    family(
        &mut out,
        "fastcgi_scoreboard_overflow_total",
        "counter",
        "Requests of dynamic applications counted together because every slot was taken.",
        &mut |out| {
            let _ = writeln!(out, "fastcgi_scoreboard_overflow_total {}", s.overflow);
        },
    );
    out
}

// ---- HTML ----

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

fn html_app(out: &mut String, a: &AppView, now: u64, index: usize) {
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
            Cause::ConnectRefused | Cause::ConnectTimeout => " → 503",
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

fn html_doc(config: &Config, snapshot: Option<&Snapshot>, refresh: Option<u32>) -> String {
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
                "counters since {} s ago (kept across {} restarts) · process manager pid {} · ",
                now.saturating_sub(s.created),
                s.restarts,
                s.manager_pid
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
                html_app(&mut out, a, now, i);
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

// ---- mod_status ----

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
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(le(2_500), "0.0025");
        assert_eq!(le(1_000_000), "1");
        assert_eq!(human_secs(Some(0.2251)), "225 ms");
        assert_eq!(human_secs(None), "–");
        assert_eq!(human_bytes(2048), "2.0 KiB");
    }
}
