//! The JSON form of receipts (and of any other type here): serde with bytes as lower-case hex,
//! principals as their text form, integers as JSON numbers, enums by their snake_case names.

use crate::types::Receipt;

impl Receipt {
    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("BUG: a receipt always serializes to JSON")
    }

    /// Parses the JSON form.
    pub fn from_json(json: &str) -> Result<Receipt, serde_json::Error> {
        serde_json::from_str(json)
    }
}
