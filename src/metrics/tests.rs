//! The scoreboard's unit tests: layout, request accounting across threads,
//! attaching again after a restart, histograms and percentiles.

#[cfg(test)] // test code only, like the whole `tests` module
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::*;

fn region(words: usize) -> &'static [AtomicU64] {
    Box::leak((0..words).map(|_| AtomicU64::new(0)).collect::<Vec<_>>().into_boxed_slice())
}

fn plan() -> Plan {
    Plan {
        defined: vec![
            PlannedApp {
                path: "/srv/a".into(),
                kind: Kind::Static,
                endpoints: vec!["unix:/run/a.sock".into()],
                slots: 0,
            },
            PlannedApp {
                path: "/srv/b".into(),
                kind: Kind::External,
                endpoints: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
                slots: 0,
            },
        ],
        dynamic_slots: 2,
        process_slots: 4,
        lease_slots: 16,
    }
}

fn board() -> Board {
    let p = plan();
    Board::create(region(p.words()), &p, 1000).unwrap()
}

fn app<'a>(s: &'a Snapshot, path: &str) -> &'a AppView {
    s.apps.iter().find(|a| a.path == path).unwrap_or_else(|| panic!("{path} not in {s:?}"))
}

/// A tracker on `b` without going through the installed board.
fn track(b: &'static Board, path: &str, dynamic: bool) -> Tracker {
    let slot = b.app_slot(path, None, dynamic);
    b.app_word(slot, layout::app::REQUESTS).fetch_add(1, Relaxed);
    b.app_word(slot, layout::app::IN_FLIGHT).fetch_add(1, Relaxed);
    Tracker::on_board(b, slot)
}

#[test]
fn defined_apps_keep_their_order_and_endpoints() {
    let b = board();
    let s = b.snapshot();
    let paths: Vec<&str> = s.apps.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(paths, ["/srv/a", "/srv/b"]);
    let eps: Vec<&str> = app(&s, "/srv/b").endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(eps, ["127.0.0.1:1", "127.0.0.1:2"]);
    assert_eq!(app(&s, "/srv/a").kind, Kind::Static);
    assert!(app(&s, "/srv/b").endpoints[0].next);
}

#[test]
fn outcomes_bytes_latency_and_in_flight() {
    let b: &'static Board = Box::leak(Box::new(board()));
    let t = track(b, "/srv/a", false);
    assert_eq!(app(&b.snapshot(), "/srv/a").in_flight, 1);
    t.connected(0, 0);
    t.first_byte(Instant::now());
    t.finish(200, 10, 20);
    let t = track(b, "/srv/a", false);
    t.cause(Outcome::IdleTimeout);
    t.cause(Outcome::ClientGone);
    t.finish(504, 0, 0);
    let t = track(b, "/srv/a", false);
    drop(t);
    let s = b.snapshot();
    let a = app(&s, "/srv/a");
    assert_eq!(a.requests, 3);
    assert_eq!(a.in_flight, 0);
    assert_eq!(a.outcome(Outcome::App2xx), 1);
    assert_eq!(a.outcome(Outcome::IdleTimeout), 1);
    assert_eq!(a.outcome(Outcome::GatewayError), 1);
    assert_eq!(a.errors(), 2);
    assert_eq!((a.bytes_in, a.bytes_out), (10, 20));
    assert_eq!(a.total.count(), 3);
    assert_eq!(a.ttfb.count(), 1);
    assert_eq!(a.endpoints[0].requests, 1);
    assert_eq!(a.endpoints[0].in_flight, 0);
}

#[test]
fn failover_marks_endpoints() {
    let b: &'static Board = Box::leak(Box::new(board()));
    let t = track(b, "/srv/b", false);
    t.connect_failed(0, false);
    t.connected(1, 1);
    t.finish(200, 0, 0);
    let s = b.snapshot();
    let e = &app(&s, "/srv/b").endpoints;
    assert_eq!((e[0].connect_failures, e[0].health, e[0].next), (1, "failed", false));
    assert_eq!((e[1].requests, e[1].failovers, e[1].health, e[1].next), (1, 1, "up", true));
    let t = track(b, "/srv/b", false);
    t.connected(0, 0);
    t.finish(200, 0, 0);
    assert_eq!(app(&b.snapshot(), "/srv/b").endpoints[0].health, "up");
}

#[test]
fn dynamic_slots_are_claimed_once_then_overflow() {
    let b: &'static Board = Box::leak(Box::new(board()));
    let first = b.app_slot("/d/1", None, true);
    assert_eq!(b.app_slot("/d/1", None, true), first);
    assert_ne!(b.app_slot("/d/1", Some((1000, 1000)), true), first);
    // Slots: 2 defined + 2 dynamic, slack and the overflow; fill them all.
    for i in 2..50 {
        track(b, &format!("/d/{i}"), true).finish(200, 0, 0);
    }
    let s = b.snapshot();
    assert!(s.overflow > 0);
    let other = app(&s, OVERFLOW_NAME);
    assert_eq!(other.requests, s.overflow);
    let total: u64 = s.apps.iter().map(|a| a.requests).sum();
    assert_eq!(total, 48);
    assert_eq!(s.apps.last().map(|a| a.kind), Some(Kind::Overflow));
}

#[test]
fn concurrent_increments_are_not_lost() {
    let b: &'static Board = Box::leak(Box::new(board()));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..5000 {
                    let path = if i % 2 == 0 { "/srv/a" } else { "/dyn/x" };
                    track(b, path, i % 2 == 1).finish(200, 1, 2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = b.snapshot();
    assert_eq!(app(&s, "/srv/a").requests + app(&s, "/dyn/x").requests, 20_000);
    assert_eq!(app(&s, "/dyn/x").outcome(Outcome::App2xx), 10_000);
    assert_eq!(app(&s, "/dyn/x").bytes_out, 20_000);
}

#[test]
fn attach_keeps_counters_for_the_same_plan_only() {
    let p = plan();
    let words = region(p.words());
    let b: &'static Board = Box::leak(Box::new(Board::create(words, &p, 1).unwrap()));
    let t = track(b, "/srv/a", false);
    track(b, "/srv/a", false).finish(200, 0, 0);
    std::mem::forget(t);
    let again = Board::attach(words, &p, false).unwrap();
    let s = again.snapshot();
    assert_eq!((app(&s, "/srv/a").requests, app(&s, "/srv/a").in_flight, s.restarts), (2, 1, 1));
    let again = Board::attach(words, &p, true).unwrap();
    assert_eq!(app(&again.snapshot(), "/srv/a").in_flight, 0);
    let mut other = p.clone();
    other.defined.pop();
    assert!(Board::attach(words, &other, false).is_none());
}

#[test]
fn process_table_from_the_manager() {
    let b = board();
    let a = b.app_slot("/srv/a", None, false);
    let d = b.app_slot("/d/x", None, true);
    b.process_started(a);
    b.publish_processes(7, &[(a, 2, true)], &[(a, 100, 5), (a, 101, 6), (d, 102, 7)]);
    let s = b.snapshot();
    assert_eq!(s.manager_pid, 7);
    let sa = app(&s, "/srv/a");
    assert_eq!((sa.processes, sa.failures, sa.backed_off, sa.starts), (2, 2, true, 1));
    assert_eq!(sa.process_list, [ProcessView { pid: 100, started: 5 }, ProcessView { pid: 101, started: 6 }]);
    assert_eq!(app(&s, "/d/x").processes, 1);
    b.publish_processes(7, &[], &[]);
    assert_eq!(app(&b.snapshot(), "/srv/a").processes, 0);
}

#[test]
fn percentiles_interpolate_within_buckets() {
    let mut buckets = vec![0u64; layout::BUCKETS];
    // 100 observations of about 201 ms: bucket (200 ms, 250 ms].
    let i = layout::BOUNDS_US.iter().position(|&b| b == 250_000).unwrap();
    buckets[i] = 100;
    let p50 = percentile(&buckets, 0.5).unwrap();
    assert!((0.2..0.3).contains(&p50), "{p50}");
    assert_eq!(percentile(&vec![0; layout::BUCKETS], 0.5), None);
    buckets[layout::BUCKETS - 1] = 1000;
    assert_eq!(percentile(&buckets, 0.99), Some(60.0));
}

#[test]
fn long_names_are_cut() {
    let b = board();
    let long = "/x".repeat(400);
    let slot = b.app_slot(&long, None, true);
    assert_eq!(b.app_slot(&long, None, true), slot);
    let s = b.snapshot();
    assert!(s.apps.iter().any(|a| a.path.len() == layout::APP_NAME_BYTES && long.starts_with(&a.path)));
}

#[test]
fn defined_slots_by_index_check_the_path() {
    let b = board();
    let slot = b.app_slot("/srv/b", None, false);
    assert_eq!(b.defined_slot(1, "/srv/b"), Some(slot));
    assert_eq!(b.defined_slot(0, "/srv/b"), None);
    assert_eq!(b.defined_slot(5, "/srv/b"), None);
}

#[test]
fn a_replayed_request_is_in_flight_once() {
    let b: &'static Board = Box::leak(Box::new(board()));
    let t = track(b, "/srv/b", false);
    t.took_from_pool(0, 0, true);
    t.connected(1, 0);
    assert_eq!(app(&b.snapshot(), "/srv/b").endpoints.iter().map(|e| e.in_flight).sum::<u64>(), 1);
    t.finish(200, 0, 0);
    let s = b.snapshot();
    assert!(app(&s, "/srv/b").endpoints.iter().all(|e| e.in_flight == 0));
    assert_eq!(app(&s, "/srv/b").endpoints[0].pool_reused, 1);
}

/// A board of its own for a test that counts places (tests run in parallel).
fn leaked_board() -> &'static Board {
    Box::leak(Box::new(board()))
}

#[test]
fn places_never_exceed_the_limit_across_threads() {
    let b = leaked_board();
    let slot = b.app_slot("/srv/a", None, false);
    let holders = std::sync::Arc::new(AtomicU64::new(0));
    let most = std::sync::Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (holders, most) = (holders.clone(), most.clone());
            std::thread::spawn(move || {
                let mut admitted = 0;
                for _ in 0..2000 {
                    let t = Tracker::on_board(b, slot);
                    if t.try_admit(3) {
                        admitted += 1;
                        let now = holders.fetch_add(1, Relaxed) + 1;
                        most.fetch_max(now, Relaxed);
                        std::thread::yield_now();
                        holders.fetch_sub(1, Relaxed);
                    }
                    t.app_done();
                    drop(t);
                }
                admitted
            })
        })
        .collect();
    let admitted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(most.load(Relaxed) <= 3, "{} held at once", most.load(Relaxed));
    assert!(admitted > 0);
    let s = b.snapshot();
    let a = app(&s, "/srv/a");
    assert_eq!((a.places.taken, a.places.waiting), (0, 0));
    assert!(b.leases_in_use() == 0, "lease words left taken");
}

#[test]
fn a_waiter_gets_the_place_a_release_frees() {
    let b = leaked_board();
    let slot = b.app_slot("/srv/b", None, false);
    let holder = Tracker::on_board(b, slot);
    assert!(holder.try_admit(1));
    let waiter = std::thread::spawn(move || {
        let t = Tracker::on_board(b, slot);
        assert!(!t.try_admit(1));
        assert!(t.enqueue(1));
        let began = Instant::now();
        while began.elapsed() < std::time::Duration::from_secs(10) {
            let seen = t.turn();
            if t.try_admit(1) {
                let waited = began.elapsed();
                t.app_done();
                return Some(waited);
            }
            t.sleep(seen, std::time::Duration::from_secs(10));
        }
        None
    });
    // The queue is full now (bound 1) once the waiter is in it.
    let queued = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(5));
        b.snapshot().apps.iter().any(|a| a.path == "/srv/b" && a.places.waiting == 1)
    });
    assert!(queued);
    let third = Tracker::on_board(b, slot);
    assert!(!third.enqueue(1), "a second waiter over -max-queued 1");
    std::thread::sleep(std::time::Duration::from_millis(100));
    holder.app_done();
    let waited = waiter.join().unwrap().expect("the waiter never got the place");
    // Woken by the release, not by its 10 s timeout.
    assert!(waited < std::time::Duration::from_secs(2), "{waited:?}");
    assert_eq!(app(&b.snapshot(), "/srv/b").places.taken, 0);
}

#[test]
fn places_of_dead_processes_are_reclaimed() {
    let b = leaked_board();
    let slot = b.app_slot("/srv/a", None, false);
    // A pid that no longer exists: a child that was started and reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    b.forge_lease(3, dead, slot, true, false);
    b.forge_lease(4, dead, slot, false, true);
    b.forge_lease(5, std::process::id(), slot, true, false);
    b.app_word(slot, layout::app::ADMITTED).store(2, Relaxed);
    b.app_word(slot, layout::app::WAITING).store(1, Relaxed);
    assert_eq!(b.reclaim_if_due(), 2);
    let s = b.snapshot();
    let a = app(&s, "/srv/a");
    assert_eq!((a.places.taken, a.places.waiting, a.places.reclaimed), (1, 0, 1));
    // At most once a second.
    b.forge_lease(6, dead, slot, true, false);
    assert_eq!(b.reclaim_if_due(), 0);
}
