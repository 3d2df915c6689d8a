//! Wire types of the patient service: a patient's own profile and medical record, and a
//! doctor's or admin's read of someone's record.
//!
//! Every request is identity-carrying (subjects under `carehub.api.patient.`): the caller is the
//! [`crate::CallContext`]'s principal, never a field of the body. Edits carry the version the
//! caller last saw (`expected_version`); a stale version answers `conflict` and changes nothing.
//! Every type ignores unknown fields, so a newer peer may add fields during a rolling upgrade.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Subjects of the patient service.
pub mod subject {
    /// Micro service name of the patient service.
    pub const SERVICE: &str = "patient";
    pub(crate) const GET_PROFILE: &str = "carehub.api.patient.profile.get";
    pub(crate) const UPDATE_PROFILE: &str = "carehub.api.patient.profile.update";
    pub(crate) const GET_RECORD: &str = "carehub.api.patient.record.get";
    pub(crate) const UPDATE_RECORD: &str = "carehub.api.patient.record.update";
    /// A doctor's or admin's read of one patient's record (audited).
    pub(crate) const READ_RECORD: &str = "carehub.api.patient.record.read";
    /// A doctor's or admin's read of one patient's profile (audited).
    pub(crate) const READ_PROFILE: &str = "carehub.api.patient.profile.read";
}

/// Writes out the types of the profile and the record that hold free text, only so that the two
/// patterns of such a text are stated once, in the one call below (`#[schema(pattern = ..)]`
/// takes nothing but a string literal). `$text` is a required text: not only spaces, and no
/// control characters but tabs and line breaks; `$blank_or_text` is the same but may be blank.
macro_rules! texts {
    ($text:literal, $blank_or_text:literal) => {
        /// A postal address.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub struct Address {
            /// Not only spaces; no control characters but tabs and line breaks (as for every text of a
            /// profile or record). Surrounding spaces are trimmed.
            #[schema(min_length = 1, max_length = 200, pattern = $text)]
            pub line1: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            /// Blank clears it.
            #[schema(max_length = 200, pattern = $blank_or_text)]
            pub line2: Option<String>,
            #[schema(min_length = 1, max_length = 100, pattern = $text)]
            pub city: String,
            #[schema(min_length = 1, max_length = 20, pattern = $text)]
            pub postal_code: String,
            #[schema(min_length = 1, max_length = 100, pattern = $text)]
            pub country: String,
        }

        /// Whom to call in an emergency.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub struct EmergencyContact {
            #[schema(min_length = 1, max_length = 100, pattern = $text)]
            pub name: String,
            /// Digits with an optional leading `+`, spaces, dots, dashes and parentheses; 6 to 15 digits.
            #[schema(
                min_length = 6,
                max_length = 32,
                example = "+44 20 7946 0958",
                pattern = r"^\s*\+?[ .()-]*([0-9][ .()-]*){6,15}\s*$"
            )]
            pub phone: String,
            /// Blank clears it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schema(max_length = 50, pattern = $blank_or_text)]
            pub relationship: Option<String>,
        }

        /// One known allergy.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub struct Allergy {
            #[schema(min_length = 1, max_length = 200, pattern = $text)]
            pub substance: String,
            /// May be blank.
            #[schema(max_length = 500, pattern = $blank_or_text)]
            pub reaction: String,
            pub severity: AllergySeverity,
        }

        /// One condition (diagnosis).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub struct Condition {
            #[schema(min_length = 1, max_length = 200, pattern = $text)]
            pub name: String,
            /// `YYYY-MM-DD`, not in the future; blank clears it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schema(schema_with = optional_date, example = "2019-06-01")]
            pub since: Option<String>,
            /// Blank clears it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schema(max_length = 1000, pattern = $blank_or_text)]
            pub notes: Option<String>,
        }

        /// One health insurance policy of the patient.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub struct InsurancePolicy {
            /// A profile holds at most one policy of each rank.
            pub rank: InsuranceRank,
            /// The insurer or plan, as on the card.
            #[schema(min_length = 1, max_length = 200, pattern = $text, example = "Northwind Health")]
            pub payer: String,
            /// Letters, digits, dashes and spaces, as on the card.
            #[schema(
                min_length = 1,
                max_length = 64,
                example = "NWH-0042 7781",
                pattern = r"^\s*[A-Za-z0-9-][A-Za-z0-9 -]*\s*$"
            )]
            pub member_id: String,
            /// Blank clears it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schema(max_length = 64, pattern = $blank_or_text)]
            pub group_number: Option<String>,
            /// The policy holder's name (the patient's own when `relationship` is `self`).
            #[schema(min_length = 1, max_length = 100, pattern = $text)]
            pub holder: String,
            /// The patient's relationship to the holder.
            pub relationship: HolderRelationship,
            /// `YYYY-MM-DD`, first day of cover; blank clears it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schema(schema_with = optional_date, example = "2026-01-01")]
            pub valid_from: Option<String>,
            /// `YYYY-MM-DD`, last day of cover, not before `valid_from`; blank clears it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schema(schema_with = optional_date, example = "2026-12-31")]
            pub valid_to: Option<String>,
        }

        /// One current medication.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub struct Medication {
            #[schema(min_length = 1, max_length = 200, pattern = $text)]
            pub name: String,
            #[schema(min_length = 1, max_length = 100, pattern = $text, example = "500 mg")]
            pub dose: String,
            #[schema(min_length = 1, max_length = 100, pattern = $text, example = "twice daily")]
            pub frequency: String,
        }
    };
}

texts!(
    r"^\s*[^\x00-\x08\x0b-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x08\x0b-\x1f\x7f-\x9f]*\s*$",
    r"^\s*[^\x00-\x08\x0b-\x1f\x7f-\x9f]*\s*$"
);

/// The editable part of a patient's profile. Absent fields are cleared by an update.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct ProfileFields {
    /// `YYYY-MM-DD`, not in the future, not before 1900; blank clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = optional_date, example = "1980-04-02")]
    pub date_of_birth: Option<String>,
    /// Digits with an optional leading `+`, spaces, dots, dashes and parentheses; 6 to 15
    /// digits. Blank clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 32,
        example = "+44 20 7946 0958",
        pattern = r"^\s*(\+?[ .()-]*([0-9][ .()-]*){6,15})?\s*$"
    )]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_contact: Option<EmergencyContact>,
    /// Zero to two policies, at most one `primary` and one `secondary`; a `secondary` only beside
    /// a `primary`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 2)]
    pub insurance: Vec<InsurancePolicy>,
}

/// The schema of an optional date: a `YYYY-MM-DD` date, a blank string (clears the field) or
/// `null`.
fn optional_date() -> utoipa::openapi::Schema {
    use utoipa::openapi::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^\s*$")),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// A patient's profile as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PatientProfile {
    pub patient_id: String,
    /// From the account; `null` until the account's registration event has reached the
    /// patient service.
    pub display_name: Option<String>,
    #[serde(flatten)]
    pub fields: ProfileFields,
    /// Incremented by every update; send it back as `If-Match`.
    pub version: i64,
    /// RFC 3339.
    pub updated_at: String,
}

/// How bad an allergic reaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllergySeverity {
    Mild,
    Moderate,
    Severe,
    LifeThreatening,
    Unknown,
}

/// Which of a patient's policies pays first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsuranceRank {
    Primary,
    Secondary,
}

/// The patient's relationship to an insurance policy's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HolderRelationship {
    /// The patient holds the policy.
    #[serde(rename = "self")]
    Own,
    Spouse,
    Child,
    Parent,
    Other,
}

/// ABO/Rh blood type; `unknown` until tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum BloodType {
    #[serde(rename = "A+")]
    APos,
    #[serde(rename = "A-")]
    ANeg,
    #[serde(rename = "B+")]
    BPos,
    #[serde(rename = "B-")]
    BNeg,
    #[serde(rename = "AB+")]
    AbPos,
    #[serde(rename = "AB-")]
    AbNeg,
    #[serde(rename = "O+")]
    OPos,
    #[serde(rename = "O-")]
    ONeg,
    #[default]
    #[serde(rename = "unknown")]
    Unknown,
}

impl BloodType {
    /// Every blood type, in a stable order.
    pub const ALL: [BloodType; 9] = [
        Self::APos,
        Self::ANeg,
        Self::BPos,
        Self::BNeg,
        Self::AbPos,
        Self::AbNeg,
        Self::OPos,
        Self::ONeg,
        Self::Unknown,
    ];

    /// The wire (and stored) name, e.g. `AB-`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::APos => "A+",
            Self::ANeg => "A-",
            Self::BPos => "B+",
            Self::BNeg => "B-",
            Self::AbPos => "AB+",
            Self::AbNeg => "AB-",
            Self::OPos => "O+",
            Self::ONeg => "O-",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// When the name is not one of [`BloodType::ALL`].
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| format!("unknown blood type '{s}'"))
    }
}

/// The editable content of a medical record. An update replaces all of it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct RecordFields {
    /// At most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub allergies: Vec<Allergy>,
    /// At most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub conditions: Vec<Condition>,
    /// At most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub medications: Vec<Medication>,
    #[serde(default)]
    pub blood_type: BloodType,
    /// Free text, at most 5000 characters.
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub notes: String,
}

/// A patient's medical record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MedicalRecord {
    pub patient_id: String,
    #[serde(flatten)]
    pub fields: RecordFields,
    /// Incremented by every update; send it back as `If-Match`.
    pub version: i64,
    /// RFC 3339.
    pub updated_at: String,
}

/// The caller's own profile (patients only; created empty on first access).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetMyProfile {}

/// Replaces the caller's profile if it is still at `expected_version` (`None`: whatever the
/// current version is, as `If-Match: *`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateMyProfile {
    #[serde(default)]
    pub expected_version: Option<i64>,
    #[serde(flatten)]
    pub fields: ProfileFields,
}

/// The caller's own medical record (patients only; created empty on first access).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GetMyRecord {}

/// Replaces the caller's medical record if it is still at `expected_version` (`None`:
/// whatever the current version is, as `If-Match: *`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateMyRecord {
    #[serde(default)]
    pub expected_version: Option<i64>,
    #[serde(flatten)]
    pub fields: RecordFields,
}

/// Read one patient's record: the patient themself, an active admin (read only), or an active
/// doctor with a current care relation. Anyone else gets `not_found`. Reads of someone else's
/// record are audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRecord {
    pub patient_id: String,
}

/// Read one patient's profile (contact details and insurance), under the rule of
/// [`ReadRecord`]: the patient themself, an active admin, or an active doctor with a current care
/// relation; anyone else gets `not_found`. Reads of someone else's profile are audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadProfile {
    pub patient_id: String,
}

rpc!(GetMyProfile => PatientProfile, subject::GET_PROFILE, "get_profile");
rpc!(UpdateMyProfile => PatientProfile, subject::UPDATE_PROFILE, "update_profile");
rpc!(GetMyRecord => MedicalRecord, subject::GET_RECORD, "get_record");
rpc!(UpdateMyRecord => MedicalRecord, subject::UPDATE_RECORD, "update_record");
rpc!(ReadRecord => MedicalRecord, subject::READ_RECORD, "read_record");
rpc!(ReadProfile => PatientProfile, subject::READ_PROFILE, "read_profile");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rpc as _;
    use crate::test_support::round_trip;
    use serde_json::json;

    #[test]
    fn blood_types_use_their_clinical_names() {
        for b in BloodType::ALL {
            assert_eq!(serde_json::to_value(b).unwrap(), json!(b.as_str()));
            assert_eq!(BloodType::parse(b.as_str()), Ok(b));
        }
        assert!(serde_json::from_value::<BloodType>(json!("C+")).is_err());
        assert!(BloodType::parse("ab+").is_err());
    }

    #[test]
    fn record_update_snapshot() {
        let r = UpdateMyRecord {
            expected_version: Some(3),
            fields: RecordFields {
                allergies: vec![Allergy {
                    substance: "penicillin".into(),
                    reaction: "rash".into(),
                    severity: AllergySeverity::LifeThreatening,
                }],
                conditions: vec![Condition {
                    name: "asthma".into(),
                    since: Some("2001-02-03".into()),
                    notes: None,
                }],
                medications: vec![Medication {
                    name: "salbutamol".into(),
                    dose: "100 µg".into(),
                    frequency: "as needed".into(),
                }],
                blood_type: BloodType::AbNeg,
                notes: "n".into(),
            },
        };
        round_trip(
            &r,
            json!({"expected_version":3,
                "allergies":[{"substance":"penicillin","reaction":"rash","severity":"life_threatening"}],
                "conditions":[{"name":"asthma","since":"2001-02-03"}],
                "medications":[{"name":"salbutamol","dose":"100 µg","frequency":"as needed"}],
                "blood_type":"AB-","notes":"n"}),
        );
    }

    #[test]
    fn an_empty_record_body_means_an_empty_record() {
        let r: UpdateMyRecord = serde_json::from_value(json!({"expected_version":1})).unwrap();
        assert_eq!(r.fields, RecordFields::default());
        assert_eq!(r.fields.blood_type, BloodType::Unknown);
    }

    #[test]
    fn profile_snapshot() {
        let p = PatientProfile {
            patient_id: "p".into(),
            display_name: Some("Pat".into()),
            fields: ProfileFields {
                date_of_birth: Some("1980-04-02".into()),
                phone: None,
                address: Some(Address {
                    line1: "1 Main St".into(),
                    line2: None,
                    city: "Leeds".into(),
                    postal_code: "LS1".into(),
                    country: "UK".into(),
                }),
                emergency_contact: Some(EmergencyContact {
                    name: "Sam".into(),
                    phone: "+44 1234 567".into(),
                    relationship: Some("sister".into()),
                }),
                insurance: vec![InsurancePolicy {
                    rank: InsuranceRank::Primary,
                    payer: "Northwind Health".into(),
                    member_id: "NWH-1".into(),
                    group_number: None,
                    holder: "Pat".into(),
                    relationship: HolderRelationship::Own,
                    valid_from: Some("2026-01-01".into()),
                    valid_to: None,
                }],
            },
            version: 2,
            updated_at: "2026-01-01T00:00:00Z".into(),
        };
        round_trip(
            &p,
            json!({"patient_id":"p","display_name":"Pat","date_of_birth":"1980-04-02",
                "address":{"line1":"1 Main St","city":"Leeds","postal_code":"LS1","country":"UK"},
                "emergency_contact":{"name":"Sam","phone":"+44 1234 567","relationship":"sister"},
                "insurance":[{"rank":"primary","payer":"Northwind Health","member_id":"NWH-1",
                    "holder":"Pat","relationship":"self","valid_from":"2026-01-01"}],
                "version":2,"updated_at":"2026-01-01T00:00:00Z"}),
        );
        // A profile without policies says nothing of them, as before policies existed.
        let mut none = p;
        none.fields.insurance.clear();
        assert!(
            serde_json::to_value(&none)
                .unwrap()
                .get("insurance")
                .is_none()
        );
    }

    #[test]
    fn read_record_snapshot_and_subjects_are_identity_carrying() {
        round_trip(
            &ReadRecord {
                patient_id: "p".into(),
            },
            json!({"patient_id":"p"}),
        );
        round_trip(
            &ReadProfile {
                patient_id: "p".into(),
            },
            json!({"patient_id":"p"}),
        );
        for s in [
            GetMyProfile::SUBJECT,
            UpdateMyProfile::SUBJECT,
            GetMyRecord::SUBJECT,
            UpdateMyRecord::SUBJECT,
            ReadRecord::SUBJECT,
            ReadProfile::SUBJECT,
        ] {
            assert!(s.starts_with("carehub.api.patient."), "{s}");
        }
    }
}
