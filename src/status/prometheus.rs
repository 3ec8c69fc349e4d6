//! `?prometheus`: the Prometheus text exposition format.

use std::fmt::Write as _;

use super::{identity_text, le, limit};
use crate::config::Config;
use crate::metrics::{self, layout::BOUNDS_US, AppView, Outcome as Cause, Refusal, Snapshot};

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
pub(super) fn doc(config: &Config, snapshot: Option<&Snapshot>) -> String {
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
        ("fastcgi_received_bodies_total", "Request bodies received whole before the application was asked.", 4),
        ("fastcgi_received_bytes_total", "Bytes of those request bodies.", 5),
        ("fastcgi_received_file_bytes_total", "Bytes of those request bodies that went to a temporary file.", 6),
    ] {
        let value = move |a: &AppView| {
            [a.held, a.held_bytes, a.held_file_bytes, a.paced, a.received, a.received_bytes, a.received_file_bytes]
                [pick]
        };
        family(&mut out, name, "counter", help, &mut |out| per_app(out, name, &value));
    }
    // Places under -max-in-flight, for the applications that have a limit.
    let limited: Vec<(&AppView, u32)> =
        s.apps.iter().map(|a| (a, limit(config, a))).filter(|&(_, max)| max > 0).collect();
    for (name, kind, help, pick) in [
        ("fastcgi_limit_max_in_flight", "gauge", "The application's -max-in-flight.", 0),
        ("fastcgi_limit_in_flight", "gauge", "Requests holding one of the application's places now.", 1),
        ("fastcgi_limit_waiting", "gauge", "Requests waiting for a place now.", 2),
        ("fastcgi_limit_waited_total", "counter", "Requests that got a place after waiting.", 3),
        (
            "fastcgi_limit_reclaimed_total",
            "counter",
            "Places given back for Apache children that died holding them.",
            4,
        ),
    ] {
        family(&mut out, name, kind, help, &mut |out| {
            for &(a, max) in &limited {
                let p = &a.places;
                let value = [u64::from(max), p.taken, p.waiting, p.waited, p.reclaimed][pick];
                let _ = writeln!(out, "{name}{{{}}} {value}", app_labels(a));
            }
        });
    }
    family(&mut out, "fastcgi_limit_wait_seconds_total", "counter", "Time requests waited for a place.", &mut |out| {
        for &(a, _) in &limited {
            let _ = writeln!(
                out,
                "fastcgi_limit_wait_seconds_total{{{}}} {}",
                app_labels(a),
                a.places.waited_us as f64 / 1e6
            );
        }
    });
    family(
        &mut out,
        "fastcgi_limit_refused_total",
        "counter",
        "Requests refused with 503 at the -max-in-flight limit, by reason.",
        &mut |out| {
            for &(a, _) in &limited {
                for &r in &Refusal::ALL {
                    let _ = writeln!(
                        out,
                        "fastcgi_limit_refused_total{{{},reason=\"{}\"}} {}",
                        app_labels(a),
                        r.name(),
                        a.places.refused(r)
                    );
                }
            }
        },
    );
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
    for (name, kind, help, value) in [
        (
            "fastcgi_spool_budget_bytes",
            "gauge",
            "FastCgiSpoolBudget: the most all children keep in temporary files.",
            s.spool_budget,
        ),
        (
            "fastcgi_spool_bytes",
            "gauge",
            "Bytes in temporary files now (request bodies and held responses).",
            s.spool_used,
        ),
        ("fastcgi_spool_peak_bytes", "gauge", "The most bytes temporary files held at once.", s.spool_peak),
        (
            "fastcgi_spool_refused_total",
            "counter",
            "Writes to temporary files that found the budget used up (the application was paced or the body streamed).",
            s.spool_refused,
        ),
    ] {
        family(&mut out, name, kind, help, &mut |out| {
            let _ = writeln!(out, "{name} {value}");
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
