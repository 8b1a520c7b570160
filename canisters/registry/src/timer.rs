//! The one timer: rollout steps (back to back), hub registration retries and cycle
//! readings. Each firing is its own execution, so no loop ever runs in one message.

use crate::runtime::Runtime;
use crate::state::{mutate_state, read_state};
use crate::types::RolloutState;

/// Arms the timer at the next thing to do (nothing when there is none).
pub fn reschedule<R: Runtime>(rt: &R) {
    let (running, failed, config) = read_state(|s| {
        (
            s.rollout()
                .is_some_and(|r| r.state == RolloutState::Running),
            s.has_failed_registrations(),
            s.config().clone(),
        )
    });
    let delay = if running {
        Some(0)
    } else if failed {
        Some(config.retry_seconds)
    } else if config.cycles_refresh_seconds > 0 {
        Some(config.cycles_refresh_seconds)
    } else {
        None
    };
    if let Some(seconds) = delay {
        rt.schedule_tick(seconds);
    }
}

struct TickGuard;

impl Drop for TickGuard {
    fn drop(&mut self) {
        mutate_state(|s| s.end_tick());
    }
}

pub async fn tick<R: Runtime>(rt: &R) {
    if !mutate_state(|s| s.try_start_tick()) {
        return;
    }
    let guard = TickGuard;
    let running = crate::rollout::step(rt).await;
    if !running {
        crate::services::background(rt).await;
    }
    drop(guard);
    reschedule(rt);
}
