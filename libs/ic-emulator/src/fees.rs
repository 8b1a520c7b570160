//! The IC's cycle prices, for a 13-node application subnet, scaled linearly by
//! subnet size as the replica's `CyclesAccountManager` does.

/// Canister creation.
pub const CANISTER_CREATION_FEE: u128 = 500_000_000_000;
/// Base fee of every update, timer or callback execution.
pub const UPDATE_MESSAGE_EXECUTION_FEE: u128 = 5_000_000;
/// Cycles per executed instruction (ten instructions cost ten cycles).
pub const INSTRUCTION_FEE: u128 = 1;
pub const INGRESS_MESSAGE_RECEPTION_FEE: u128 = 1_200_000;
pub const INGRESS_BYTE_RECEPTION_FEE: u128 = 2_000;
pub const XNET_CALL_FEE: u128 = 260_000;
pub const XNET_BYTE_TRANSMISSION_FEE: u128 = 1_000;
/// Storage, per GiB per second.
pub const GIB_STORAGE_PER_SECOND_FEE: u128 = 127_000;
/// One threshold signature or vetKD derivation on a 13-node subnet.
pub const THRESHOLD_SIGNATURE_FEE_13: u128 = 10_000_000_000;
/// Instructions whose execution a call prepays for its response (refunded).
pub const RESPONSE_EXECUTION_PREPAYMENT_INSTRUCTIONS: u128 = 5_000_000_000;
/// The largest inter-canister payload, prepaid for the response transmission.
pub const MAX_INTER_CANISTER_PAYLOAD: u128 = 2 * 1024 * 1024;
pub const DEFAULT_FREEZING_THRESHOLD_SECONDS: u64 = 30 * 24 * 3600;

const REFERENCE_SUBNET_SIZE: u128 = 13;

/// Fees of one subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    pub node_count: u32,
}

impl Fees {
    fn scale(&self, cycles: u128) -> u128 {
        cycles * u128::from(self.node_count) / REFERENCE_SUBNET_SIZE
    }
    pub fn execution(&self, instructions: u64) -> u128 {
        self.scale(UPDATE_MESSAGE_EXECUTION_FEE + INSTRUCTION_FEE * u128::from(instructions))
    }
    pub fn ingress_induction(&self, bytes: usize) -> u128 {
        self.scale(INGRESS_MESSAGE_RECEPTION_FEE + INGRESS_BYTE_RECEPTION_FEE * bytes as u128)
    }
    /// `ic0.cost_call`: the fee a call is charged when it is made.
    pub fn call(&self, method_name_size: u64, payload_size: u64) -> u128 {
        self.scale(
            XNET_CALL_FEE
                + XNET_BYTE_TRANSMISSION_FEE * u128::from(method_name_size + payload_size),
        )
    }
    /// Reserved when a call is made and refunded, less the actual cost, when
    /// its response has executed.
    pub fn response_prepayment(&self) -> u128 {
        self.scale(
            UPDATE_MESSAGE_EXECUTION_FEE
                + INSTRUCTION_FEE * RESPONSE_EXECUTION_PREPAYMENT_INSTRUCTIONS
                + XNET_BYTE_TRANSMISSION_FEE * MAX_INTER_CANISTER_PAYLOAD,
        )
    }
    pub fn response_transmission(&self, bytes: usize) -> u128 {
        self.scale(XNET_BYTE_TRANSMISSION_FEE * bytes as u128)
    }
    pub fn create_canister(&self) -> u128 {
        self.scale(CANISTER_CREATION_FEE)
    }
    pub fn http_request(&self, request_size: u64, max_response_bytes: u64) -> u128 {
        let n = u128::from(self.node_count);
        (3_000_000 + 60_000 * n) * n
            + 400 * n * u128::from(request_size)
            + 800 * n * u128::from(max_response_bytes)
    }
    /// Cycles burned per day by a canister of `memory_bytes` bytes.
    pub fn idle_cycles_per_day(&self, memory_bytes: u64) -> u128 {
        self.scale(GIB_STORAGE_PER_SECOND_FEE * u128::from(memory_bytes) * 86_400 / (1 << 30))
    }
    /// Cycles a canister must keep to stay above its freezing threshold.
    pub fn freezing_limit(&self, memory_bytes: u64, freezing_threshold_seconds: u64) -> u128 {
        self.idle_cycles_per_day(memory_bytes) * u128::from(freezing_threshold_seconds) / 86_400
    }
}

/// The fee of one threshold signature or derivation with `key_name`, charged
/// at the size of the subnet that holds the key (`key_1` lives on the 34-node
/// fiduciary subnet: 26_153_846_153 cycles).
pub fn threshold_fee(key_name: &str) -> Option<u128> {
    match key_name {
        "key_1" => Some(THRESHOLD_SIGNATURE_FEE_13 * 34 / REFERENCE_SUBNET_SIZE),
        "test_key_1" | "dfx_test_key" => Some(THRESHOLD_SIGNATURE_FEE_13),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_price_key_1_signature_as_on_mainnet() {
        assert_eq!(threshold_fee("key_1"), Some(26_153_846_153));
        assert_eq!(threshold_fee("test_key_1"), Some(10_000_000_000));
        assert_eq!(threshold_fee("nope"), None);
    }

    #[test]
    fn should_scale_fees_with_subnet_size() {
        let app = Fees { node_count: 13 };
        let fid = Fees { node_count: 34 };
        assert_eq!(app.call(3, 7), 270_000);
        assert_eq!(fid.create_canister(), 500_000_000_000 * 34 / 13);
        assert_eq!(app.execution(1_000), 5_001_000);
    }
}
