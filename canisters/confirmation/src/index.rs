//! The idempotency index: 32-byte keys (SHA-256 of submitter and reference) -> record id, as
//! open-addressed hash tables directly in a stable virtual memory.
//!
//! A `StableBTreeMap` insert loads and rewrites whole nodes on its path (100 K to 300 K
//! instructions per insert at 10 K entries, measured), which alone would break the submit
//! budget. Here an insert is one or two 40-byte slot reads and one write, a miss one probe per
//! table:
//!
//! ```text
//! offset 0   magic "SIX1" | 4 zero bytes
//! offset 8   table count u64 BE
//! offset 16  entries in the last table u64 BE
//! offset 64  table 0 (BASE slots), table 1 (2 BASE slots), table 2 (4 BASE slots), ...
//! slot       key 32 | record id + 1, u64 BE (0 = empty)
//! ```
//!
//! A table is never rehashed: when the last one is half full, the next one (twice as large)
//! is opened. Keys are SHA-256 outputs, so their first 8 bytes are a uniform hash. Lookups
//! probe every table, newest first: O(log n) probes of O(1) each.

use ic_stable_structures::Memory as _;

use crate::storage::Memory;

const MAGIC: [u8; 8] = *b"SIX1\0\0\0\0";
const HEADER: u64 = 64;
const SLOT: u64 = 40;
/// Slots of the first table.
pub const BASE: u64 = 1 << 16;
const PAGE: u64 = 65_536;

pub struct IdempotencyIndex {
    memory: Memory,
    tables: u64,
    last_len: u64,
}

fn capacity(table: u64) -> u64 {
    BASE << table
}

fn table_offset(table: u64) -> u64 {
    // Tables 0..table hold BASE * (2^table - 1) slots.
    HEADER + SLOT * BASE * ((1u64 << table) - 1)
}

fn read_u64(memory: &Memory, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    memory.read(offset, &mut b);
    u64::from_be_bytes(b)
}

impl IdempotencyIndex {
    pub fn init(memory: Memory) -> Self {
        if memory.size() == 0 {
            if memory.grow(1) < 0 {
                panic!("BUG: cannot grow the idempotency index");
            }
            memory.write(0, &MAGIC);
            return IdempotencyIndex {
                memory,
                tables: 0,
                last_len: 0,
            };
        }
        let mut magic = [0u8; 8];
        memory.read(0, &mut magic);
        assert_eq!(magic, MAGIC, "BUG: the idempotency index has a bad magic");
        IdempotencyIndex {
            tables: read_u64(&memory, 8),
            last_len: read_u64(&memory, 16),
            memory,
        }
    }

    fn slot_key(&self, table: u64, key: &[u8; 32], probe: u64) -> u64 {
        let mut h = [0u8; 8];
        h.copy_from_slice(&key[..8]);
        let index = (u64::from_be_bytes(h).wrapping_add(probe)) & (capacity(table) - 1);
        table_offset(table) + index * SLOT
    }

    fn read_slot(&self, offset: u64) -> ([u8; 32], u64) {
        let mut slot = [0u8; SLOT as usize];
        self.memory.read(offset, &mut slot);
        let mut key = [0u8; 32];
        key.copy_from_slice(&slot[..32]);
        let mut v = [0u8; 8];
        v.copy_from_slice(&slot[32..]);
        (key, u64::from_be_bytes(v))
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<u64> {
        for table in (0..self.tables).rev() {
            for probe in 0..capacity(table) {
                let (k, v) = self.read_slot(self.slot_key(table, key, probe));
                if v == 0 {
                    break;
                }
                if &k == key {
                    return Some(v - 1);
                }
            }
        }
        None
    }

    /// Inserts a key that is not present (the caller checked with [`Self::get`]).
    pub fn insert(&mut self, key: [u8; 32], id: u64) {
        if self.tables == 0 || self.last_len * 2 >= capacity(self.tables - 1) {
            self.open_table();
        }
        let table = self.tables - 1;
        for probe in 0..capacity(table) {
            let offset = self.slot_key(table, &key, probe);
            let (_, v) = self.read_slot(offset);
            if v == 0 {
                let mut slot = [0u8; SLOT as usize];
                slot[..32].copy_from_slice(&key);
                slot[32..].copy_from_slice(&(id + 1).to_be_bytes());
                self.memory.write(offset, &slot);
                self.last_len += 1;
                self.memory.write(16, &self.last_len.to_be_bytes());
                return;
            }
        }
        panic!("BUG: a half-full idempotency table has no free slot");
    }

    fn open_table(&mut self) {
        let end = table_offset(self.tables + 1);
        let pages = end.div_ceil(PAGE);
        let have = self.memory.size();
        if pages > have && self.memory.grow(pages - have) < 0 {
            panic!("BUG: cannot grow the idempotency index");
        }
        self.tables += 1;
        self.last_len = 0;
        self.memory.write(8, &self.tables.to_be_bytes());
        self.memory.write(16, &0u64.to_be_bytes());
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> u64 {
        (0..self.tables.saturating_sub(1))
            .map(|t| capacity(t) / 2)
            .sum::<u64>()
            + self.last_len
    }
}
