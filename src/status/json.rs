//! `?json`: everything the page knows, for monitoring.

use super::{identity_text, json_f64, json_str, kind, le, limit};
use crate::config::Config;
use crate::metrics::{layout::BOUNDS_US, AppView, Histogram, Outcome as Cause, Refusal, Snapshot};

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

/// Places under `-max-in-flight` (`max_in_flight` null: no limit).
fn json_limit(a: &AppView, max: u32) -> String {
    let p = &a.places;
    let refused: Vec<String> = Refusal::ALL.iter().map(|&r| format!("\"{}\":{}", r.name(), p.refused(r))).collect();
    format!(
        "{{\"max_in_flight\":{},\"in_flight\":{},\"waiting\":{},\"waited\":{},\"wait_seconds_total\":{:.6},\"refused\":{{{}}},\"reclaimed\":{}}}",
        if max == 0 { "null".to_string() } else { max.to_string() },
        p.taken,
        p.waiting,
        p.waited,
        p.waited_us as f64 / 1e6,
        refused.join(","),
        p.reclaimed
    )
}

fn json_app(a: &AppView, max: u32) -> String {
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
        "{{\"path\":{},\"kind\":\"{}\",\"identity\":{},\"requests\":{},\"in_flight\":{},\"errors\":{},\"outcomes\":{{{}}},\"bytes_in\":{},\"bytes_out\":{},\"held\":{{\"responses\":{},\"bytes\":{},\"file_bytes\":{},\"paced\":{}}},\"received\":{{\"bodies\":{},\"bytes\":{},\"file_bytes\":{}}},\"duration\":{},\"ttfb\":{},\"endpoints\":[{}],\"processes\":{{\"count\":{},\"starts\":{},\"failures\":{},\"backed_off\":{},\"list\":[{}]}},\"limit\":{}}}",
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
        a.received,
        a.received_bytes,
        a.received_file_bytes,
        json_hist(&a.total),
        json_hist(&a.ttfb),
        endpoints.join(","),
        a.processes,
        a.starts,
        a.failures,
        a.backed_off,
        procs.join(","),
        json_limit(a, max)
    )
}

pub(super) fn doc(config: &Config, snapshot: Option<&Snapshot>, manager: Result<Vec<u8>, String>) -> String {
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
    let manager = match manager.and_then(|answer| super::manager::json(&answer)) {
        Ok(doc) => doc,
        Err(why) => format!("{{\"error\":{}}}", json_str(&why)),
    };
    let (scoreboard, apps) = match snapshot {
        Some(s) => (
            format!(
                "{{\"enabled\":true,\"created\":{},\"restarts\":{},\"manager_pid\":{},\"overflow\":{},\"dynamic_slots_used\":{},\"spool\":{{\"budget\":{},\"in_use\":{},\"peak\":{},\"refused\":{}}}}}",
                s.created, s.restarts, s.manager_pid, s.overflow, s.dynamic_slots_used, s.spool_budget, s.spool_used, s.spool_peak, s.spool_refused
            ),
            s.apps.iter().map(|a| json_app(a, limit(config, a))).collect::<Vec<_>>(),
        ),
        None => ("{\"enabled\":false}".to_string(), Vec::new()),
    };
    format!(
        "{{\"scoreboard\":{scoreboard},\"applications\":[{}],\"defined\":[{}],\"manager\":{manager}}}\n",
        apps.join(","),
        defined.join(",")
    )
}
