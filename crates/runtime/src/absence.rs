//! A doctor's absence (time off, a disabled account) against their confirmed appointments:
//! the one rule the doctor and auth services both apply, through the admin service.

/// A doctor's absence over confirmed appointments (time off, a disabled account), as the
/// doctor and auth services apply it: with none in `[start, end)` nothing happens; otherwise,
/// without `force`, a 409 listing them (`what` opens the message, e.g. "the time off
/// overlaps"); with `force`, the admin service cancels them, telling each patient `reason` and
/// who (`actor`).
///
/// # Errors
/// `conflict` as above; `service_unavailable` / `timeout` when the admin service cannot answer.
#[expect(
    clippy::too_many_arguments,
    reason = "one absence, spelled out at both call sites"
)]
pub async fn clear_for_absence(
    bus: &carehub_bus::Bus,
    ctx: &carehub_nats::CallContext,
    doctor_id: &str,
    start: &str,
    end: Option<&str>,
    force: bool,
    reason: String,
    actor: carehub_nats::appointment::Actor,
    what: &str,
) -> Result<(), carehub_nats::WireError> {
    let ask = carehub_nats::appointment::ConfirmedOverlapping {
        doctor_id: doctor_id.into(),
        start: start.into(),
        end: end.map(str::to_owned),
    };
    let found = bus.request(ctx, &ask).await.map_err(|e| e.to_wire())?;
    if found.appointments.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(carehub_nats::WireError::conflict(format!(
            "{what} {} confirmed appointment(s): {}; repeat with force to cancel them",
            found.appointments.len(),
            describe(&found.appointments)
        )));
    }
    let cancel = carehub_nats::appointment::CancelOverlapping {
        doctor_id: doctor_id.into(),
        start: start.into(),
        end: end.map(str::to_owned),
        reason,
        actor,
    };
    bus.request(ctx, &cancel).await.map_err(|e| e.to_wire())?;
    Ok(())
}

/// A short human list of appointments for a 409 message: `<id> at <start>`.
fn describe(appointments: &[carehub_nats::appointment::Appointment]) -> String {
    appointments
        .iter()
        .map(|a| format!("{} at {}", a.id, a.start.as_deref().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join(", ")
}
