//! Validated patient input and the rule deciding what a doctor may read. No I/O.
//!
//! [`Profile::parse`] and [`Record::parse`] trim text, check every limit and return the first
//! problem as `validation_failed` naming the field; [`doctor_access`] turns a care relation into
//! the reason a read is allowed (or none).

use carehub_nats::WireError;
use carehub_nats::appointment::CareRelationReply;
use carehub_nats::patient::{
    Address, Allergy, Condition, EmergencyContact, InsurancePolicy, InsuranceRank, Medication,
    ProfileFields, RecordFields,
};
use chrono::{Datelike as _, NaiveDate};

/// Longest medical-record notes, in characters.
pub(crate) const MAX_NOTES: usize = 5000;
/// Most entries in each list of a record.
pub(crate) const MAX_ENTRIES: usize = 100;

/// A profile whose every field passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile(ProfileFields);

impl Profile {
    /// Validates and normalizes (trims) a profile; `today` bounds the date of birth.
    ///
    /// # Errors
    /// `validation_failed` naming the first invalid field.
    pub(crate) fn parse(f: ProfileFields, today: NaiveDate) -> Result<Self, WireError> {
        let date_of_birth = match f.date_of_birth.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => {
                let d = parse_date("date_of_birth", s)?;
                if d > today {
                    return Err(WireError::validation(
                        "date_of_birth: must not be in the future",
                    ));
                }
                if d.year() < 1900 {
                    return Err(WireError::validation(
                        "date_of_birth: must not be before 1900",
                    ));
                }
                Some(s.to_owned())
            }
        };
        let phone_number = optional(f.phone.as_deref())
            .map(|p| phone("phone", p))
            .transpose()?;
        let address = f
            .address
            .map(|a| {
                Ok::<_, WireError>(Address {
                    line1: text("address.line1", &a.line1, 1, 200)?,
                    line2: optional(a.line2.as_deref())
                        .map(|l| text("address.line2", l, 1, 200))
                        .transpose()?,
                    city: text("address.city", &a.city, 1, 100)?,
                    postal_code: text("address.postal_code", &a.postal_code, 1, 20)?,
                    country: text("address.country", &a.country, 1, 100)?,
                })
            })
            .transpose()?;
        let emergency_contact = f
            .emergency_contact
            .map(|c| {
                Ok::<_, WireError>(EmergencyContact {
                    name: text("emergency_contact.name", &c.name, 1, 100)?,
                    phone: phone("emergency_contact.phone", &c.phone)?,
                    relationship: optional(c.relationship.as_deref())
                        .map(|r| text("emergency_contact.relationship", r, 1, 50))
                        .transpose()?,
                })
            })
            .transpose()?;
        let insurance = insurance(f.insurance)?;
        Ok(Self(ProfileFields {
            date_of_birth,
            phone: phone_number,
            address,
            emergency_contact,
            insurance,
        }))
    }

    pub(crate) fn fields(&self) -> &ProfileFields {
        &self.0
    }
}

/// A medical record whose every field passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record(RecordFields);

impl Record {
    /// Validates and normalizes (trims) a record; `today` bounds the conditions' `since`.
    ///
    /// # Errors
    /// `validation_failed` naming the first invalid field.
    pub(crate) fn parse(f: &RecordFields, today: NaiveDate) -> Result<Self, WireError> {
        for (name, len) in [
            ("allergies", f.allergies.len()),
            ("conditions", f.conditions.len()),
            ("medications", f.medications.len()),
        ] {
            if len > MAX_ENTRIES {
                return Err(WireError::validation(format!(
                    "{name}: at most {MAX_ENTRIES} entries"
                )));
            }
        }
        if f.notes.chars().count() > MAX_NOTES {
            return Err(WireError::validation(format!(
                "notes: at most {MAX_NOTES} characters"
            )));
        }
        let allergies = f
            .allergies
            .iter()
            .enumerate()
            .map(|(i, a)| {
                Ok(Allergy {
                    substance: text(&format!("allergies[{i}].substance"), &a.substance, 1, 200)?,
                    reaction: text(&format!("allergies[{i}].reaction"), &a.reaction, 0, 500)?,
                    severity: a.severity,
                })
            })
            .collect::<Result<_, WireError>>()?;
        let conditions = f
            .conditions
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let since = match optional(c.since.as_deref()) {
                    None => None,
                    Some(s) => {
                        let field = format!("conditions[{i}].since");
                        if parse_date(&field, s)? > today {
                            return Err(WireError::validation(format!(
                                "{field}: must not be in the future"
                            )));
                        }
                        Some(s.to_owned())
                    }
                };
                Ok(Condition {
                    name: text(&format!("conditions[{i}].name"), &c.name, 1, 200)?,
                    since,
                    notes: optional(c.notes.as_deref())
                        .map(|n| text(&format!("conditions[{i}].notes"), n, 1, 1000))
                        .transpose()?,
                })
            })
            .collect::<Result<_, WireError>>()?;
        let medications = f
            .medications
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Ok(Medication {
                    name: text(&format!("medications[{i}].name"), &m.name, 1, 200)?,
                    dose: text(&format!("medications[{i}].dose"), &m.dose, 1, 100)?,
                    frequency: text(&format!("medications[{i}].frequency"), &m.frequency, 1, 100)?,
                })
            })
            .collect::<Result<_, WireError>>()?;
        Ok(Self(RecordFields {
            allergies,
            conditions,
            medications,
            blood_type: f.blood_type,
            notes: f.notes.trim().to_owned(),
        }))
    }

    pub(crate) fn fields(&self) -> &RecordFields {
        &self.0
    }
}

/// `None` for an absent or blank optional text, else the trimmed text.
fn optional(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.trim().is_empty())
}

/// Most insurance policies on a profile (a primary and a secondary).
pub(crate) const MAX_POLICIES: usize = 2;

/// Validated policies, primary first: at most one of each rank, a secondary only beside a
/// primary, cover that does not end before it starts.
fn insurance(policies: Vec<InsurancePolicy>) -> Result<Vec<InsurancePolicy>, WireError> {
    if policies.len() > MAX_POLICIES {
        return Err(WireError::validation(format!(
            "insurance: at most {MAX_POLICIES} policies (a primary and a secondary)"
        )));
    }
    let mut out = Vec::with_capacity(policies.len());
    for (i, p) in policies.into_iter().enumerate() {
        let field = |name: &str| format!("insurance[{i}].{name}");
        if out.iter().any(|o: &InsurancePolicy| o.rank == p.rank) {
            return Err(WireError::validation(format!(
                "{}: only one {} policy",
                field("rank"),
                rank_name(p.rank)
            )));
        }
        let date = |name: &str, d: Option<&str>| {
            optional(d)
                .map(|s| parse_date(&field(name), s.trim()).map(|day| (s.trim().to_owned(), day)))
                .transpose()
        };
        let valid_from = date("valid_from", p.valid_from.as_deref())?;
        let valid_to = date("valid_to", p.valid_to.as_deref())?;
        if let (Some((_, from)), Some((_, to))) = (&valid_from, &valid_to)
            && to < from
        {
            return Err(WireError::validation(format!(
                "{}: must not be before valid_from",
                field("valid_to")
            )));
        }
        out.push(InsurancePolicy {
            rank: p.rank,
            payer: text(&field("payer"), &p.payer, 1, 200)?,
            member_id: member_id(&field("member_id"), &p.member_id)?,
            group_number: optional(p.group_number.as_deref())
                .map(|g| text(&field("group_number"), g, 1, 64))
                .transpose()?,
            holder: text(&field("holder"), &p.holder, 1, 100)?,
            relationship: p.relationship,
            valid_from: valid_from.map(|(s, _)| s),
            valid_to: valid_to.map(|(s, _)| s),
        });
    }
    if out.iter().any(|p| p.rank == InsuranceRank::Secondary)
        && !out.iter().any(|p| p.rank == InsuranceRank::Primary)
    {
        return Err(WireError::validation(
            "insurance: a secondary policy needs a primary one",
        ));
    }
    out.sort_by_key(|p| p.rank != InsuranceRank::Primary);
    Ok(out)
}

fn rank_name(rank: InsuranceRank) -> &'static str {
    match rank {
        InsuranceRank::Primary => "primary",
        InsuranceRank::Secondary => "secondary",
    }
}

/// A member id: 1 to 64 letters, digits, dashes and spaces, trimmed (at most 64 as sent).
fn member_id(field: &str, s: &str) -> Result<String, WireError> {
    let t = text(field, s, 1, 64)?;
    if !t
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ')
    {
        return Err(WireError::validation(format!(
            "{field}: only letters, digits, dashes and spaces"
        )));
    }
    Ok(t)
}

/// Trimmed text of at least `min` characters without control characters; at most `max` as
/// sent, surrounding whitespace included (the schema's `maxLength` counts what is sent).
fn text(field: &str, s: &str, min: usize, max: usize) -> Result<String, WireError> {
    let t = s.trim();
    if t.chars().count() < min {
        return Err(WireError::validation(format!("{field}: must not be empty")));
    }
    if s.chars().count() > max {
        return Err(WireError::validation(format!(
            "{field}: at most {max} characters"
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(WireError::validation(format!(
            "{field}: must not contain control characters"
        )));
    }
    Ok(t.to_owned())
}

/// A phone number: digits with an optional leading `+`, spaces, dots, dashes and parentheses;
/// 6 to 15 digits, at most 32 characters.
fn phone(field: &str, s: &str) -> Result<String, WireError> {
    let t = s.trim();
    let bad = || {
        WireError::validation(format!(
            "{field}: expected a phone number of 6 to 15 digits (spaces, dots, dashes, parentheses and a leading + allowed)"
        ))
    };
    let body = t.strip_prefix('+').unwrap_or(t);
    if s.chars().count() > 32
        || !body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '(' | ')'))
    {
        return Err(bad());
    }
    let digits = body.chars().filter(char::is_ascii_digit).count();
    if !(6..=15).contains(&digits) {
        return Err(bad());
    }
    Ok(t.to_owned())
}

/// A calendar date written `YYYY-MM-DD`.
///
/// # Errors
/// `validation_failed` naming `field` when the text is not a real date in that form.
pub(crate) fn parse_date(field: &str, s: &str) -> Result<NaiveDate, WireError> {
    let bad = || WireError::validation(format!("{field}: expected a date as YYYY-MM-DD"));
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u16>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return Err(bad());
    };
    NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d)).ok_or_else(bad)
}

/// Today's date in UTC.
pub(crate) fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

const DAY_MS: i64 = 86_400_000;

/// Why a doctor may read a patient's record right now, or `None` when they may not: an offer
/// to them is open, an appointment between them is confirmed, or one was completed no more
/// than `window_days` days before `now_ms`.
pub(crate) fn doctor_access(
    r: &CareRelationReply,
    now_ms: i64,
    window_days: u32,
) -> Option<&'static str> {
    if r.confirmed {
        return Some("confirmed_appointment");
    }
    if r.open_offer {
        return Some("open_offer");
    }
    let window = i64::from(window_days).saturating_mul(DAY_MS);
    r.last_completed_at
        .filter(|&at| now_ms.saturating_sub(at) <= window)
        .map(|_| "recently_completed_appointment")
}

#[cfg(test)]
mod tests {
    use super::*;
    use carehub_nats::ErrorCode;
    use carehub_nats::patient::{AllergySeverity, BloodType, HolderRelationship};

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn profile_with_dob(dob: &str) -> Result<Profile, WireError> {
        Profile::parse(
            ProfileFields {
                date_of_birth: Some(dob.into()),
                ..Default::default()
            },
            today(),
        )
    }

    #[test]
    fn dates_of_birth_must_be_real_past_dates_after_1900() {
        assert!(profile_with_dob("1980-02-29").is_ok());
        assert!(profile_with_dob("2026-11-22").is_ok());
        for bad in [
            "1981-02-29",
            "2026-11-23",
            "1899-12-31",
            "1980-13-01",
            "1980-1-01",
            "01/02/1980",
            "1980-00-10",
            "+980-01-01",
        ] {
            let e = profile_with_dob(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed, "{bad}");
            assert!(e.message.starts_with("date_of_birth"), "{bad}: {e}");
        }
    }

    #[test]
    fn profiles_are_trimmed_and_blank_optionals_cleared() {
        let p = Profile::parse(
            ProfileFields {
                date_of_birth: Some("  ".into()),
                phone: Some(" +44 (20) 7946-0958 ".into()),
                address: Some(Address {
                    line1: " 1 Main St ".into(),
                    line2: Some(" ".into()),
                    city: "Leeds".into(),
                    postal_code: "LS1 1AA".into(),
                    country: "UK".into(),
                }),
                emergency_contact: None,
                insurance: vec![],
            },
            today(),
        )
        .unwrap();
        let f = p.fields();
        assert_eq!(f.date_of_birth, None);
        assert_eq!(f.phone.as_deref(), Some("+44 (20) 7946-0958"));
        let a = f.address.as_ref().unwrap();
        assert_eq!(a.line1, "1 Main St");
        assert_eq!(a.line2, None);
    }

    fn policy(rank: InsuranceRank) -> InsurancePolicy {
        InsurancePolicy {
            rank,
            payer: " Northwind Health ".into(),
            member_id: " NWH-0042 7781 ".into(),
            group_number: Some(" ".into()),
            holder: "Ada Lovelace".into(),
            relationship: HolderRelationship::Own,
            valid_from: Some("2026-01-01".into()),
            valid_to: Some(" ".into()),
        }
    }

    fn with_insurance(policies: Vec<InsurancePolicy>) -> Result<Profile, WireError> {
        Profile::parse(
            ProfileFields {
                insurance: policies,
                ..ProfileFields::default()
            },
            today(),
        )
    }

    #[test]
    fn insurance_policies_are_trimmed_and_the_primary_comes_first() {
        let p = with_insurance(vec![
            policy(InsuranceRank::Secondary),
            policy(InsuranceRank::Primary),
        ])
        .unwrap();
        let got = &p.fields().insurance;
        assert_eq!(
            got.iter().map(|p| p.rank).collect::<Vec<_>>(),
            [InsuranceRank::Primary, InsuranceRank::Secondary]
        );
        assert_eq!(got[0].payer, "Northwind Health");
        assert_eq!(got[0].member_id, "NWH-0042 7781");
        assert_eq!(got[0].group_number, None);
        assert_eq!(got[0].valid_from.as_deref(), Some("2026-01-01"));
        assert_eq!(got[0].valid_to, None);
        assert!(
            with_insurance(vec![])
                .unwrap()
                .fields()
                .insurance
                .is_empty()
        );
    }

    #[test]
    fn insurance_errors_name_the_policy_and_field() {
        let bad = |f: fn(&mut InsurancePolicy)| {
            let mut p = policy(InsuranceRank::Primary);
            f(&mut p);
            let e = with_insurance(vec![p]).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationFailed);
            e.message
        };
        assert!(bad(|p| p.payer = "  ".into()).starts_with("insurance[0].payer:"));
        assert!(bad(|p| p.payer = "x".repeat(201)).starts_with("insurance[0].payer:"));
        assert!(bad(|p| p.member_id = "NWH/42".into()).starts_with("insurance[0].member_id:"));
        assert!(bad(|p| p.member_id = "7".repeat(65)).starts_with("insurance[0].member_id:"));
        assert!(bad(|p| p.member_id = "Ünï-1".into()).starts_with("insurance[0].member_id:"));
        assert!(
            bad(|p| p.group_number = Some("g".repeat(65)))
                .starts_with("insurance[0].group_number:")
        );
        assert!(bad(|p| p.holder = String::new()).starts_with("insurance[0].holder:"));
        assert!(
            bad(|p| p.valid_from = Some("2026-02-30".into()))
                .starts_with("insurance[0].valid_from:")
        );
        assert!(
            bad(|p| (p.valid_from, p.valid_to) =
                (Some("2026-06-01".into()), Some("2026-05-31".into())))
            .starts_with("insurance[0].valid_to: must not be before valid_from")
        );
        // One day of cover is a valid policy.
        let mut one_day = policy(InsuranceRank::Primary);
        one_day.valid_to = one_day.valid_from.clone();
        assert!(with_insurance(vec![one_day]).is_ok());
    }

    #[test]
    fn a_profile_holds_one_primary_and_at_most_one_secondary() {
        let e = with_insurance(vec![
            policy(InsuranceRank::Primary),
            policy(InsuranceRank::Primary),
        ])
        .unwrap_err();
        assert!(
            e.message.starts_with("insurance[1].rank: only one primary"),
            "{e}"
        );
        let e = with_insurance(vec![policy(InsuranceRank::Secondary)]).unwrap_err();
        assert!(e.message.contains("needs a primary"), "{e}");
        let e = with_insurance(vec![
            policy(InsuranceRank::Primary),
            policy(InsuranceRank::Secondary),
            policy(InsuranceRank::Secondary),
        ])
        .unwrap_err();
        assert!(e.message.starts_with("insurance: at most 2"), "{e}");
    }

    #[test]
    fn phone_numbers_need_six_to_fifteen_digits_and_nothing_else() {
        for bad in [
            "12345",
            "call me",
            "+1 234 567 890 123 456",
            "12345a7",
            "++123456",
        ] {
            let f = ProfileFields {
                phone: Some(bad.into()),
                ..Default::default()
            };
            assert!(Profile::parse(f, today()).is_err(), "{bad}");
        }
    }

    /// The schema's `maxLength` counts what is sent, so the server does too: surrounding
    /// whitespace that takes a field past its limit is refused, not trimmed into it.
    #[test]
    fn a_limit_counts_surrounding_whitespace_as_the_schema_does() {
        let padded = format!("\n\t{}", "x".repeat(999));
        let fields = |notes: &str| RecordFields {
            conditions: vec![Condition {
                name: "flu".into(),
                since: None,
                notes: Some(notes.to_owned()),
            }],
            blood_type: BloodType::ONeg,
            ..Default::default()
        };
        let e = Record::parse(&fields(&padded), today()).unwrap_err();
        assert!(e.message.starts_with("conditions[0].notes"), "{e}");
        let within = format!(" {} ", "x".repeat(998));
        let r = Record::parse(&fields(&within), today()).expect("1000 characters as sent");
        assert_eq!(
            r.fields().conditions[0].notes.as_deref(),
            Some("x".repeat(998).as_str()),
            "stored trimmed"
        );
        assert!(text("f", &format!("  {}", "y".repeat(99)), 1, 100).is_err());
        assert!(phone("phone", &format!("{}+49 30 1234567", " ".repeat(20))).is_err());
        assert_eq!(optional(Some("  ")), None);
    }

    #[test]
    fn records_enforce_notes_length_and_required_entry_fields() {
        let ok = RecordFields {
            notes: "é".repeat(MAX_NOTES),
            ..Default::default()
        };
        assert!(
            Record::parse(&ok, today()).is_ok(),
            "5000 characters, not bytes"
        );
        let long = RecordFields {
            notes: "x".repeat(MAX_NOTES + 1),
            ..Default::default()
        };
        let e = Record::parse(&long, today()).unwrap_err();
        assert!(e.message.starts_with("notes"), "{e}");

        let blank = RecordFields {
            allergies: vec![Allergy {
                substance: "  ".into(),
                reaction: String::new(),
                severity: AllergySeverity::Mild,
            }],
            ..Default::default()
        };
        let e = Record::parse(&blank, today()).unwrap_err();
        assert_eq!(e.message, "allergies[0].substance: must not be empty");

        let future = RecordFields {
            conditions: vec![Condition {
                name: "flu".into(),
                since: Some("2027-01-01".into()),
                notes: None,
            }],
            blood_type: BloodType::ONeg,
            ..Default::default()
        };
        let e = Record::parse(&future, today()).unwrap_err();
        assert!(e.message.starts_with("conditions[0].since"), "{e}");

        let many = RecordFields {
            medications: vec![
                Medication {
                    name: "m".into(),
                    dose: "1".into(),
                    frequency: "daily".into(),
                };
                MAX_ENTRIES + 1
            ],
            ..Default::default()
        };
        assert!(Record::parse(&many, today()).is_err());
    }

    fn relation(open_offer: bool, confirmed: bool, done: Option<i64>) -> CareRelationReply {
        CareRelationReply {
            open_offer,
            confirmed,
            last_completed_at: done,
        }
    }

    #[test]
    fn doctors_read_only_during_a_care_relation() {
        let now = 100 * DAY_MS;
        assert_eq!(doctor_access(&relation(false, false, None), now, 30), None);
        assert_eq!(
            doctor_access(&relation(true, false, None), now, 30),
            Some("open_offer")
        );
        assert_eq!(
            doctor_access(&relation(false, true, None), now, 30),
            Some("confirmed_appointment")
        );
        assert_eq!(
            doctor_access(&relation(false, false, Some(now - 30 * DAY_MS)), now, 30),
            Some("recently_completed_appointment")
        );
        assert_eq!(
            doctor_access(
                &relation(false, false, Some(now - 30 * DAY_MS - 1)),
                now,
                30
            ),
            None
        );
        assert_eq!(
            doctor_access(&relation(false, false, Some(now - 1)), now, 0),
            None
        );
    }
}
