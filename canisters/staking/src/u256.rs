//! Just enough unsigned 256-bit arithmetic for the reward index: exact, no allocation, a few
//! thousand instructions at most (arbitrary-precision `Nat` cost hundreds of thousands).

/// `hi * 2^128 + lo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct U256 {
    hi: u128,
    lo: u128,
}

const MASK: u128 = u64::MAX as u128;

impl U256 {
    pub const ZERO: U256 = U256 { hi: 0, lo: 0 };

    pub fn from_u128(lo: u128) -> Self {
        U256 { hi: 0, lo }
    }

    /// The full product of two u128.
    pub fn mul(a: u128, b: u128) -> Self {
        let (a0, a1) = (a & MASK, a >> 64);
        let (b0, b1) = (b & MASK, b >> 64);
        let p00 = a0 * b0;
        let p01 = a0 * b1;
        let p10 = a1 * b0;
        let p11 = a1 * b1;
        let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
        U256 {
            lo: (p00 & MASK) | (mid << 64),
            hi: p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64),
        }
    }

    pub fn checked_add(self, o: U256) -> Option<U256> {
        let (lo, carry) = self.lo.overflowing_add(o.lo);
        let hi = self.hi.checked_add(o.hi)?.checked_add(u128::from(carry))?;
        Some(U256 { hi, lo })
    }

    pub fn checked_sub(self, o: U256) -> Option<U256> {
        let (lo, borrow) = self.lo.overflowing_sub(o.lo);
        let hi = self.hi.checked_sub(o.hi)?.checked_sub(u128::from(borrow))?;
        Some(U256 { hi, lo })
    }

    pub fn checked_mul_u128(self, b: u128) -> Option<U256> {
        let lo = U256::mul(self.lo, b);
        let hi = U256::mul(self.hi, b);
        if hi.hi != 0 {
            return None;
        }
        Some(U256 {
            lo: lo.lo,
            hi: lo.hi.checked_add(hi.lo)?,
        })
    }

    /// Quotient and remainder; `d` must not be 0.
    pub fn div_rem(self, d: u128) -> (U256, u128) {
        assert!(d != 0, "BUG: division by zero");
        if self.hi == 0 {
            return (U256::from_u128(self.lo / d), self.lo % d);
        }
        let mut q = U256::ZERO;
        let mut r: u128 = 0;
        for i in (0..256).rev() {
            let bit = if i >= 128 {
                (self.hi >> (i - 128)) & 1
            } else {
                (self.lo >> i) & 1
            };
            let overflow = r >> 127 == 1;
            r = (r << 1) | bit;
            if overflow || r >= d {
                r = r.wrapping_sub(d);
                if i >= 128 {
                    q.hi |= 1 << (i - 128);
                } else {
                    q.lo |= 1 << i;
                }
            }
        }
        (q, r)
    }

    pub fn to_u128(self) -> Option<u128> {
        (self.hi == 0).then_some(self.lo)
    }
}

/// `a * b / c`, rounded down; `None` when the result exceeds u128.
pub fn mul_div(a: u128, b: u128, c: u128) -> Option<u128> {
    U256::mul(a, b).div_rem(c).0.to_u128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Nat;

    fn nat(x: U256) -> Nat {
        Nat::from(x.hi) * (Nat::from(u128::MAX) + Nat::from(1u8)) + Nat::from(x.lo)
    }

    #[test]
    fn should_agree_with_arbitrary_precision() {
        let samples = [
            0u128,
            1,
            7,
            u64::MAX as u128,
            u64::MAX as u128 + 1,
            1_000_000_000_000_000_000,
            u128::MAX / 3,
            u128::MAX - 1,
            u128::MAX,
            0x1234_5678_9abc_def0_0fed_cba9_8765_4321,
        ];
        for &a in &samples {
            for &b in &samples {
                let p = U256::mul(a, b);
                assert_eq!(nat(p), Nat::from(a) * Nat::from(b));
                for &d in samples.iter().filter(|d| **d != 0) {
                    let (q, r) = p.div_rem(d);
                    assert_eq!(nat(q), Nat::from(a) * Nat::from(b) / Nat::from(d));
                    assert_eq!(Nat::from(r), Nat::from(a) * Nat::from(b) % Nat::from(d));
                }
                if let Some(s) = p.checked_add(U256::from_u128(b)) {
                    assert_eq!(nat(s), Nat::from(a) * Nat::from(b) + Nat::from(b));
                }
            }
        }
        let x = U256::mul(u128::MAX, 3);
        assert_eq!(
            x.checked_sub(U256::from_u128(5)).map(nat),
            Some(nat(x) - Nat::from(5u8))
        );
        assert_eq!(U256::from_u128(1).checked_sub(U256::from_u128(2)), None);
        assert_eq!(U256::mul(u128::MAX, u128::MAX).checked_mul_u128(2), None);
    }
}
