//! Settling a transfer whose retry got `TooOld` from the ledger's ICRC-3 history, for every
//! Stratros canister that moves tokens (staking, the confirmation hub).
//!
//! After 24 h the ledger no longer deduplicates a journaled transfer, so its retry answers
//! `TooOld` whether or not an earlier attempt executed. A transaction created at `T` can only
//! be in a block with `T - drift <= ts <= T + 24 h + drift`, and block timestamps never
//! decrease, so a backward scan from the tip that stops below `T - drift` sees every block
//! that could hold it: found, it is settled with that block; not found, it never executed,
//! and since the ledger already refuses `T` it never will.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::Principal;
use icrc_ledger_types::icrc::generic_value::ICRC3Value;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc3::blocks::GetBlocksResult;

/// The one ledger call the search needs: ICRC-3 `icrc3_get_blocks` with one range (bounded
/// wait; a ledger without it answers a reject, given here as its message).
#[allow(async_fn_in_trait)]
pub trait BlockSource {
    async fn get_blocks(
        &self,
        ledger: Principal,
        start: u64,
        length: u64,
    ) -> Result<GetBlocksResult, String>;
}

/// The clock drift ledgers allow on `created_at_time` (60 s on DFINITY's ledgers, 2 min on
/// the test fixture), with margin: blocks older than `T - HISTORY_DRIFT_NANOS` are not read.
pub const HISTORY_DRIFT_NANOS: u64 = 10 * 60 * 1_000_000_000;
/// Blocks asked for per `icrc3_get_blocks` call.
pub const HISTORY_PAGE: u64 = 1_000;
/// `icrc3_get_blocks` calls per operation per attempt (a longer scan resumes next time).
pub const HISTORY_CALLS_PER_RUN: u32 = 5;

/// Where a scan for one operation stands: blocks below `next` are still to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cursor {
    created_at_time: u64,
    next: u64,
    page: u64,
}

thread_local! {
    /// Heap only: a lost cursor (upgrade) only restarts the scan from the tip.
    static CURSORS: RefCell<BTreeMap<Key, Cursor>> = const { RefCell::new(BTreeMap::new()) };
}

/// Whose scan a cursor is: a kind of operation (`"out"`, `"withdrawal"`, ...) and its id, so
/// that one canister's kinds of operations never share a cursor.
pub type Key = (&'static str, u64);

/// The transfer being looked for.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub key: Key,
    pub from: Account,
    /// `None`: a burn (a `burn` block has no `to`).
    pub to: Option<Account>,
    pub amount: u128,
    pub memo: Vec<u8>,
    pub created_at_time: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// The transfer is in block `index`.
    Found(u64),
    /// Every block that could hold it was read: it is not there.
    NotFound,
    /// The scan goes on at the next attempt.
    Continue { next: u64 },
    /// Cannot be decided from this ledger (no ICRC-3, archived blocks, a failed call).
    Undecided(String),
}

fn field<'a>(v: &'a ICRC3Value, key: &str) -> Option<&'a ICRC3Value> {
    match v {
        ICRC3Value::Map(m) => m.get(key),
        _ => None,
    }
}

fn nat_u128(v: Option<&ICRC3Value>) -> Option<u128> {
    match v {
        Some(ICRC3Value::Nat(n)) => u128::try_from(&n.0).ok(),
        _ => None,
    }
}

fn account(v: Option<&ICRC3Value>) -> Option<Account> {
    let Some(ICRC3Value::Array(parts)) = v else {
        return None;
    };
    let owner = match parts.first() {
        Some(ICRC3Value::Blob(b)) => Principal::try_from_slice(b).ok()?,
        _ => return None,
    };
    let subaccount = match parts.get(1) {
        None => None,
        Some(ICRC3Value::Blob(b)) => Some(<[u8; 32]>::try_from(b.as_slice()).ok()?),
        Some(_) => return None,
    };
    Some(Account { owner, subaccount })
}

/// `null` and the all-zero subaccount are the same account.
fn same(a: &Account, b: &Account) -> bool {
    a.owner == b.owner && a.subaccount.unwrap_or([0; 32]) == b.subaccount.unwrap_or([0; 32])
}

/// The block's operation: `tx.op` (ICRC-1/2 legacy form) or the `btype` (`1xfer`, ...).
fn op(block: &ICRC3Value, tx: &ICRC3Value) -> Option<String> {
    if let Some(ICRC3Value::Text(op)) = field(tx, "op") {
        return Some(op.clone());
    }
    match field(block, "btype") {
        Some(ICRC3Value::Text(b)) => Some(
            b.trim_start_matches(|c: char| c.is_ascii_digit())
                .to_string(),
        ),
        _ => None,
    }
}

/// Whether `block` is the wanted transfer.
pub fn matches(block: &ICRC3Value, w: &Wanted) -> bool {
    let Some(tx) = field(block, "tx") else {
        return false;
    };
    let kind_ok = match (op(block, tx).as_deref(), &w.to) {
        (Some("xfer"), Some(to)) => account(field(tx, "to")).is_some_and(|a| same(&a, to)),
        (Some("burn"), None) => true,
        _ => false,
    };
    kind_ok
        && account(field(tx, "from")).is_some_and(|a| same(&a, &w.from))
        && nat_u128(field(tx, "amt")) == Some(w.amount)
        && matches!(field(tx, "memo"), Some(ICRC3Value::Blob(m)) if m.as_slice() == w.memo.as_slice())
        && nat_u128(field(tx, "ts")) == Some(u128::from(w.created_at_time))
}

/// The block's timestamp (`ts`).
fn block_ts(block: &ICRC3Value) -> Option<u64> {
    nat_u128(field(block, "ts")).and_then(|t| u64::try_from(t).ok())
}

/// Reads one page, `[next - page, next)`, from the top down.
fn scan_page(r: &GetBlocksResult, start: u64, next: u64, w: &Wanted) -> Search {
    let floor = w.created_at_time.saturating_sub(HISTORY_DRIFT_NANOS);
    let by_id: BTreeMap<u64, &ICRC3Value> = r
        .blocks
        .iter()
        .filter_map(|b| Some((u64::try_from(&b.id.0).ok()?, &b.block)))
        .collect();
    let mut id = next;
    while id > start {
        id -= 1;
        let Some(block) = by_id.get(&id) else {
            if !r.archived_blocks.is_empty() {
                return Search::Undecided(format!(
                    "TooOld: block {id} is archived; reading archives is not supported"
                ));
            }
            // A ledger that returned fewer blocks than asked: go on below what it gave.
            return if id + 1 == next {
                Search::Undecided(format!("TooOld: the ledger returned no block {id}"))
            } else {
                Search::Continue { next: id + 1 }
            };
        };
        if matches(block, w) {
            return Search::Found(id);
        }
        match block_ts(block) {
            Some(ts) if ts < floor => return Search::NotFound,
            Some(_) => {}
            None => return Search::Undecided(format!("TooOld: block {id} has no timestamp")),
        }
    }
    if start == 0 {
        Search::NotFound
    } else {
        Search::Continue { next: start }
    }
}

/// Searches the ledger's history for `w`, at most [`HISTORY_CALLS_PER_RUN`] calls, resuming
/// a scan left by an earlier attempt.
pub async fn search<S: BlockSource>(rt: &S, ledger: Principal, w: &Wanted) -> Search {
    let resumed = CURSORS.with_borrow(|c| c.get(&w.key).cloned());
    let mut cursor = match resumed {
        Some(c) if c.created_at_time == w.created_at_time => c,
        _ => {
            // The tip, read after the ledger answered TooOld: no later block can hold it.
            match rt.get_blocks(ledger, 0, 0).await {
                Ok(r) => match u64::try_from(&r.log_length.0) {
                    Ok(len) => Cursor {
                        created_at_time: w.created_at_time,
                        next: len,
                        page: HISTORY_PAGE,
                    },
                    Err(_) => return Search::Undecided("TooOld: bad log_length".into()),
                },
                Err(e) => {
                    return Search::Undecided(format!("TooOld: icrc3_get_blocks failed: {e}"));
                }
            }
        }
    };
    let mut outcome = Search::Continue { next: cursor.next };
    for _ in 0..HISTORY_CALLS_PER_RUN {
        if cursor.next == 0 {
            outcome = Search::NotFound;
            break;
        }
        let start = cursor.next.saturating_sub(cursor.page);
        let r = match rt.get_blocks(ledger, start, cursor.next - start).await {
            Ok(r) => r,
            Err(e) => {
                outcome = Search::Undecided(format!("TooOld: icrc3_get_blocks failed: {e}"));
                break;
            }
        };
        outcome = scan_page(&r, start, cursor.next, w);
        match outcome {
            Search::Continue { next } => {
                if next != start {
                    // Fewer blocks than asked: ask for as many as the ledger gives.
                    cursor.page = (r.blocks.len() as u64).max(1);
                }
                cursor.next = next;
            }
            _ => break,
        }
    }
    match outcome {
        Search::Continue { .. } => CURSORS.with_borrow_mut(|c| c.insert(w.key, cursor)),
        _ => CURSORS.with_borrow_mut(|c| c.remove(&w.key)),
    };
    outcome
}

/// Forgets a scan (the operation settled otherwise).
pub fn forget(key: Key) {
    CURSORS.with_borrow_mut(|c| c.remove(&key));
}

/// Forgets every scan (native tests: a fresh canister per test).
pub fn reset() {
    CURSORS.with_borrow_mut(|c| c.clear());
}
