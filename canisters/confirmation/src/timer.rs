//! The work timer (IC only): one pending `ic-cdk-timers` timer at the state's next deadline
//! (a seal or a retry). Its id lives on the heap; `post_upgrade` re-arms it from stable state.

use std::cell::Cell;
use std::time::Duration;

use ic_cdk_timers::TimerId;

use crate::confirm;
use crate::runtime::IcRuntime;
use crate::state::read_state;

thread_local! {
    /// The armed timer and its deadline (IC nanoseconds).
    static TIMER: Cell<Option<(TimerId, u64)>> = const { Cell::new(None) };
    /// The fee forwarding interval timer.
    static FEE_TIMER: Cell<Option<TimerId>> = const { Cell::new(None) };
}

/// Arms the fee timer when fees are configured (after install and upgrade): it retries
/// pending credit withdrawals and forwards collected fees to restaking.
pub fn arm_fees() {
    if let Some(id) = FEE_TIMER.take() {
        ic_cdk_timers::clear_timer(id);
    }
    let interval = read_state(|s| s.fee_config().map(|c| c.forward_interval_seconds));
    if let Some(seconds) = interval {
        let id = ic_cdk_timers::set_timer_interval(Duration::from_secs(seconds), || async {
            crate::payments::retry_withdrawals(&IcRuntime).await;
            crate::payments::forward_fees(&IcRuntime).await;
        });
        FEE_TIMER.set(Some(id));
    }
}

/// Arms the timer for the state's next deadline (seal or retry), unless an earlier one is armed.
pub fn arm() {
    if let Some(deadline) = read_state(|s| s.next_wakeup()) {
        arm_at(deadline);
    }
}

/// Arms the timer for `deadline`, unless one is armed at or before it.
pub fn arm_at(deadline: u64) {
    let now = ic_cdk::api::time();
    let deadline = deadline.max(now);
    if let Some((id, at)) = TIMER.get() {
        if at <= deadline {
            return;
        }
        ic_cdk_timers::clear_timer(id);
    }
    let id = ic_cdk_timers::set_timer(Duration::from_nanos(deadline - now), async {
        TIMER.set(None);
        confirm::run_tick(&IcRuntime).await;
    });
    TIMER.set(Some((id, deadline)));
}
