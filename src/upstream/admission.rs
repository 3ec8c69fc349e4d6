//! Whether a request may go to its application now: under `-max-in-flight`
//! it takes one of the application's places (counted across every child on
//! the scoreboard), or waits for one up to `-queue-timeout` among at most
//! `-max-queued` others, or is refused. A refused request never touches
//! the application, so a hung application holds at most its limit of
//! Apache's workers and its queue, and the rest of the server answers.

use std::time::{Duration, Instant};

use crate::config::AppOptions;
use crate::metrics::{Refusal, Tracker};

/// How often a waiter looks whether its client is still there.
const CLIENT_CHECK: Duration = Duration::from_millis(200);

/// A request that got no place.
#[derive(Debug)]
pub struct Refused {
    pub why: Refusal,
    /// How long it waited.
    pub waited: Duration,
    /// The application's places taken, waiters and refusals so far, when
    /// this refusal is the one of its second to log.
    pub log: Option<(u64, u64, u64)>,
}

/// Takes a place for the request under `options`' limit, waiting if it
/// must; Ok gives how long it waited (zero without a limit). `client_gone`
/// is asked while it waits (a waiter whose client left gives up its turn).
/// The place goes back with [`Tracker::app_done`] or the tracker's end.
pub fn admit(
    options: &AppOptions,
    metrics: &Tracker,
    client_gone: &mut dyn FnMut() -> bool,
) -> Result<Duration, Refused> {
    let limit = options.max_in_flight;
    if limit == 0 || metrics.try_admit(limit) {
        return Ok(Duration::ZERO);
    }
    let start = Instant::now();
    let refuse = |why: Refusal| Refused { why, waited: start.elapsed(), log: metrics.refused(why) };
    if options.queue_timeout_ms == 0 || !metrics.enqueue(options.queue_bound()) {
        return Err(refuse(Refusal::QueueFull));
    }
    let deadline = start + Duration::from_millis(options.queue_timeout_ms.into());
    loop {
        let seen = metrics.turn();
        if metrics.try_admit(limit) {
            let waited = start.elapsed();
            metrics.waited(waited);
            return Ok(waited);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(refuse(Refusal::Timeout));
        }
        metrics.sleep(seen, (deadline - now).min(CLIENT_CHECK));
        if client_gone() {
            return Err(refuse(Refusal::ClientGone));
        }
    }
}
