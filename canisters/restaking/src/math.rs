//! Exact `a * b / c` on `u128` with a 256-bit intermediate, rounding down or up.
//!
//! Rounding rule of the whole canister: what is taken from stakers (slashes) rounds **up**,
//! what is paid or credited to them (values, rewards) rounds **down**, so rounding never
//! creates tokens and a non-zero slash never rounds to nothing.

/// 100 % in basis points.
pub const BPS: u32 = 10_000;
/// Fixed-point one (1e18): the initial magnitude of a pool and the reward index unit.
pub const WAD: u128 = 1_000_000_000_000_000_000;

/// `(hi, lo)` of `a * b`.
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & MASK);
    let (b1, b0) = (b >> 64, b & MASK);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
    let lo = (p00 & MASK) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// `(a * b / c, a * b % c)`, or `None` when `c == 0` or the quotient exceeds `u128`.
fn mul_div_rem(a: u128, b: u128, c: u128) -> Option<(u128, u128)> {
    if c == 0 {
        return None;
    }
    let (hi, lo) = mul_wide(a, b);
    if hi == 0 {
        return Some((lo / c, lo % c));
    }
    if hi >= c {
        return None;
    }
    // Long division of the 256-bit (hi, lo) by c, one bit at a time; hi < c throughout.
    let mut rem = hi;
    let mut q: u128 = 0;
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry == 1 || rem >= c {
            rem = rem.wrapping_sub(c);
            q |= 1;
        }
    }
    Some((q, rem))
}

/// `floor(a * b / c)`; `None` on division by zero or overflow.
pub fn mul_div_floor(a: u128, b: u128, c: u128) -> Option<u128> {
    mul_div_rem(a, b, c).map(|(q, _)| q)
}

/// `ceil(a * b / c)`; `None` on division by zero or overflow.
pub fn mul_div_ceil(a: u128, b: u128, c: u128) -> Option<u128> {
    let (q, r) = mul_div_rem(a, b, c)?;
    if r == 0 { Some(q) } else { q.checked_add(1) }
}

/// `floor(a * b / c)` where the caller knows `b <= c` (the result cannot overflow).
pub fn scale_down(a: u128, b: u128, c: u128) -> u128 {
    mul_div_floor(a, b, c).unwrap_or_else(|| panic!("BUG: {a} * {b} / {c} with b <= c"))
}

/// `ceil(a * b / c)` where the caller knows `b <= c`.
pub fn scale_down_ceil(a: u128, b: u128, c: u128) -> u128 {
    mul_div_ceil(a, b, c).unwrap_or_else(|| panic!("BUG: ceil {a} * {b} / {c} with b <= c"))
}

/// An unsigned 256-bit integer as (high, low) halves: just what reward weighting needs
/// (a stake scaled to 18 decimals times a weight, summed over pools, exceeds `u128`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct U256 {
    pub hi: u128,
    pub lo: u128,
}

impl U256 {
    pub const ZERO: U256 = U256 { hi: 0, lo: 0 };
    pub const MAX: U256 = U256 {
        hi: u128::MAX,
        lo: u128::MAX,
    };

    /// `a × b`, exact.
    pub fn mul(a: u128, b: u128) -> U256 {
        let (hi, lo) = mul_wide(a, b);
        U256 { hi, lo }
    }

    /// `self × m`; `None` on overflow.
    pub fn checked_mul(self, m: u128) -> Option<U256> {
        let (carry, lo) = mul_wide(self.lo, m);
        let (over, hi) = mul_wide(self.hi, m);
        if over != 0 {
            return None;
        }
        Some(U256 {
            hi: hi.checked_add(carry)?,
            lo,
        })
    }

    pub fn saturating_add(self, o: U256) -> U256 {
        let (lo, carry) = self.lo.overflowing_add(o.lo);
        match self
            .hi
            .checked_add(o.hi)
            .and_then(|h| h.checked_add(u128::from(carry)))
        {
            Some(hi) => U256 { hi, lo },
            None => U256::MAX,
        }
    }

    /// Significant bits.
    pub fn bits(self) -> u32 {
        if self.hi != 0 {
            256 - self.hi.leading_zeros()
        } else {
            128 - self.lo.leading_zeros()
        }
    }

    /// `floor(self / 2^k)`, for `k < 256`.
    pub fn shift_right(self, k: u32) -> U256 {
        match k {
            0 => self,
            1..=127 => U256 {
                hi: self.hi >> k,
                lo: (self.lo >> k) | (self.hi << (128 - k)),
            },
            128..=255 => U256 {
                hi: 0,
                lo: self.hi >> (k - 128),
            },
            _ => U256::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_match_exact_arithmetic_on_small_values() {
        for (a, b, c) in [(7u128, 9u128, 4u128), (0, 5, 3), (u64::MAX as u128, 3, 7)] {
            assert_eq!(mul_div_floor(a, b, c), Some(a * b / c));
            assert_eq!(mul_div_ceil(a, b, c), Some((a * b).div_ceil(c)));
        }
    }

    #[test]
    fn should_divide_products_wider_than_u128() {
        let a = u128::MAX;
        assert_eq!(mul_div_floor(a, WAD, WAD), Some(a));
        assert_eq!(mul_div_floor(a, 3, 4), Some(a / 4 * 3 + (a % 4) * 3 / 4));
        assert_eq!(mul_div_floor(a, a, a), Some(a));
        assert_eq!(mul_div_floor(a, 2, 1), None);
        assert_eq!(mul_div_ceil(a, a - 1, a), Some(a - 1));
        assert_eq!(mul_div_floor(1 << 100, 1 << 100, 1 << 90), Some(1 << 110));
        assert_eq!(
            mul_div_ceil((1 << 100) + 1, 1 << 100, 1 << 101),
            Some((1 << 99) + 1)
        );
    }

    #[test]
    fn should_multiply_add_and_shift_256_bit_values_exactly() {
        let x = U256::mul(u128::MAX, 10u128.pow(18));
        assert_eq!(x.bits(), 128 + 60);
        let y = x.checked_mul(u128::from(u32::MAX)).expect("below 2^256");
        assert_eq!(y.bits(), 188 + 32);
        assert_eq!(U256::mul(3, 5).shift_right(1), U256 { hi: 0, lo: 7 });
        assert_eq!(
            U256 { hi: 1, lo: 0 }.shift_right(1),
            U256 {
                hi: 0,
                lo: 1 << 127
            }
        );
        assert_eq!(
            U256 { hi: 6, lo: 0 }.shift_right(129),
            U256 { hi: 0, lo: 3 }
        );
        assert_eq!(
            U256 {
                hi: 0,
                lo: u128::MAX
            }
            .saturating_add(U256 { hi: 0, lo: 1 }),
            U256 { hi: 1, lo: 0 }
        );
        assert_eq!(U256::MAX.saturating_add(U256 { hi: 0, lo: 1 }), U256::MAX);
        assert_eq!(U256::MAX.checked_mul(2), None);
    }
}
