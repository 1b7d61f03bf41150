//! The notification body: the reference's fields (public API §6) and nothing else.
//!
//! `context` and `data` are always `null`: the reference product echoes the request body in
//! `context`, which would carry card data (reliability row D9), so SmartPay never does.

use serde::Serialize;

/// Who the payload is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// A payment; `objectId` is its transaction id.
    Payment,
    /// A refund; `objectId` is the refund's id.
    Refund,
}

impl ObjectType {
    /// The wire value: `payment` or `refund`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Payment => "payment",
            ObjectType::Refund => "refund",
        }
    }
}

/// What caused the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A merchant's API call.
    Api,
    /// A shopper's action in the widget.
    Widget,
    /// SmartPay itself (expiry, settlement, provider callbacks).
    Automated,
}

impl Origin {
    /// The wire value: `api`, `widget` or `automated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Widget => "widget",
            Origin::Automated => "automated",
        }
    }
}

/// One notification, as stored by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Event id (a UUID); also sent as `SmartPay-Event-Id`.
    pub id: String,
    pub merchant_key: String,
    /// When the change happened, Unix milliseconds; rendered `yyyy-MM-ddTHH:mm:ss.SSSZ` (UTC).
    pub created_at_ms: i64,
    pub origin: Origin,
    pub object_type: ObjectType,
    /// The transaction id for a payment, the refund's id (its `modificationId`) for a refund.
    pub object_id: String,
    /// `metadata.modificationId`: a refund's `modificationId` (absent for payments).
    pub modification_id: Option<String>,
    /// `metadata.transactionId` (also for refunds).
    pub transaction_id: String,
    /// `metadata.status`: the new payment or refund status.
    pub status: String,
    /// `metadata.reconciliationReferenceId`.
    pub reconciliation_reference_id: Option<String>,
}

/// The body's shape; field order is the order on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    id: &'a str,
    merchant_key: &'a str,
    created_at: String,
    origin: &'static str,
    event_type: &'static str,
    object_id: &'a str,
    object_type: &'static str,
    metadata: Metadata<'a>,
    context: (),
    data: (),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    transaction_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    modification_id: Option<&'a str>,
    status: &'a str,
    reconciliation_reference_id: Option<&'a str>,
}

/// The JSON body for `e`: `id`, `merchantKey`, `createdAt`, `origin`, `eventType: "updated"`,
/// `objectId`, `objectType`, `metadata {transactionId, modificationId (refunds), status,
/// reconciliationReferenceId}`,
/// `context: null`, `data: null`. The same bytes for the same event, on every attempt.
pub fn payload(e: &Event) -> Vec<u8> {
    let body = Body {
        id: &e.id,
        merchant_key: &e.merchant_key,
        created_at: format_created_at(e.created_at_ms),
        origin: e.origin.as_str(),
        event_type: "updated",
        object_id: &e.object_id,
        object_type: e.object_type.as_str(),
        metadata: Metadata {
            transaction_id: &e.transaction_id,
            modification_id: e.modification_id.as_deref(),
            status: &e.status,
            reconciliation_reference_id: e.reconciliation_reference_id.as_deref(),
        },
        context: (),
        data: (),
    };
    // Serializing plain strings into a Vec cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Unix milliseconds as `yyyy-MM-ddTHH:mm:ss.SSSZ` (UTC), e.g. `2021-05-26T14:29:05.994Z`.
pub fn format_created_at(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (in_day / 3_600_000, in_day % 3_600_000);
    let (min, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            id: "c200b3fd-4960-4cd8-918c-5919013ce769".into(),
            merchant_key: "31928de9-1344-469f-b0eb-8e5d0fef3d21".into(),
            created_at_ms: 1_622_039_345_994,
            origin: Origin::Automated,
            object_type: ObjectType::Payment,
            object_id: "933a0fab-80a0-42c5-b010-c71174f4ab32".into(),
            modification_id: None,
            transaction_id: "933a0fab-80a0-42c5-b010-c71174f4ab32".into(),
            status: "CAPTURED".into(),
            reconciliation_reference_id: Some("RTEvocd9ZkGirboB8haVlw".into()),
        }
    }

    #[test]
    fn created_at_matches_the_reference_example() {
        assert_eq!(format_created_at(1_622_039_345_994), "2021-05-26T14:29:05.994Z");
        assert_eq!(format_created_at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_created_at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_created_at(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_created_at(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn payload_has_exactly_the_reference_fields() {
        let v: serde_json::Value = serde_json::from_slice(&payload(&event())).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "context",
                "createdAt",
                "data",
                "eventType",
                "id",
                "merchantKey",
                "metadata",
                "objectId",
                "objectType",
                "origin"
            ]
        );
        let mut meta: Vec<&str> = v["metadata"].as_object().unwrap().keys().map(String::as_str).collect();
        meta.sort_unstable();
        assert_eq!(meta, ["reconciliationReferenceId", "status", "transactionId"]);
        assert_eq!(v["id"], "c200b3fd-4960-4cd8-918c-5919013ce769");
        assert_eq!(v["merchantKey"], "31928de9-1344-469f-b0eb-8e5d0fef3d21");
        assert_eq!(v["createdAt"], "2021-05-26T14:29:05.994Z");
        assert_eq!(v["origin"], "automated");
        assert_eq!(v["eventType"], "updated");
        assert_eq!(v["objectId"], "933a0fab-80a0-42c5-b010-c71174f4ab32");
        assert_eq!(v["objectType"], "payment");
        assert_eq!(v["metadata"]["transactionId"], "933a0fab-80a0-42c5-b010-c71174f4ab32");
        assert_eq!(v["metadata"]["status"], "CAPTURED");
        assert_eq!(v["metadata"]["reconciliationReferenceId"], "RTEvocd9ZkGirboB8haVlw");
        assert!(v["context"].is_null());
        assert!(v["data"].is_null());
    }

    #[test]
    fn payload_is_deterministic_and_in_wire_order() {
        let e = event();
        let a = payload(&e);
        assert_eq!(a, payload(&e.clone()));
        let text = String::from_utf8(a).unwrap();
        assert!(text.starts_with(r#"{"id":"c200b3fd-4960-4cd8-918c-5919013ce769","merchantKey":"#), "{text}");
        assert!(text.ends_with(r#""context":null,"data":null}"#), "{text}");
    }

    #[test]
    fn refund_payload_names_the_refund_and_its_transaction() {
        let e = Event {
            object_type: ObjectType::Refund,
            object_id: "4f6e528d-1438-43ee-9835-a17c05c34429".into(),
            modification_id: None,
            origin: Origin::Api,
            status: "REFUNDED".into(),
            reconciliation_reference_id: None,
            ..event()
        };
        let v: serde_json::Value = serde_json::from_slice(&payload(&e)).unwrap();
        assert_eq!(v["objectType"], "refund");
        assert_eq!(v["origin"], "api");
        assert_eq!(v["objectId"], "4f6e528d-1438-43ee-9835-a17c05c34429");
        assert_eq!(v["metadata"]["transactionId"], "933a0fab-80a0-42c5-b010-c71174f4ab32");
        assert!(v["metadata"]["reconciliationReferenceId"].is_null());
        assert_eq!(Origin::Widget.as_str(), "widget");
    }
}
