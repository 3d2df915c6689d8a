//! A doctor's absence (time off, a disabled account) against their confirmed appointments:
//! the one rule the doctor and auth services both apply, through the admin service.

/// A doctor's absence over confirmed appointments (time off, a disabled account), as the
/// doctor and auth services apply it: with none in `[start, end)` nothing happens; otherwise,
/// without `force`, 409 `appointments_affected` listing them as data in its details (`what`
/// opens the message, e.g. "the time off overlaps"); with `force`, the admin service cancels
/// them, telling each patient `reason` and who (`actor`).
///
/// # Errors
/// `appointments_affected` as above; `service_unavailable` / `timeout` when the admin service
/// cannot answer.
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
        return Err(affected(what, &found.appointments));
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

/// The 409 for `appointments`: the list as data in the details, and in short in the message
/// (`<id> at <start>`, for logs and people reading raw answers).
fn affected(
    what: &str,
    appointments: &[carehub_nats::appointment::Appointment],
) -> carehub_nats::WireError {
    let listed: Vec<_> = appointments
        .iter()
        .filter_map(carehub_nats::appointment::AffectedAppointment::of)
        .collect();
    let short = listed
        .iter()
        .map(|a| format!("{} at {}", a.id, a.start))
        .collect::<Vec<_>>()
        .join(", ");
    carehub_nats::WireError::new(
        carehub_nats::ErrorCode::AppointmentsAffected,
        format!(
            "{what} {} confirmed appointment(s): {short}; repeat with force to cancel them",
            listed.len()
        ),
    )
    .with_details(carehub_nats::ErrorDetails {
        appointments: listed,
    })
}
