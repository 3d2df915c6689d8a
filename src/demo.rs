//! Furnishes the demo clinic through the public API once `carehub up --demo` is serving:
//! doctors get a specialty and working hours (Europe/Berlin, weekdays 09:00–17:00, 30-minute
//! slots; one of them takes instant bookings), and the admin creates two groups, one per
//! specialty (round robin for cardiology, broadcast for dermatology). Going through the API
//! means every change flows through the services' own rules, outboxes and events.

use crate::provision::SeededUser;
use anyhow::Context as _;
use carehub_nats::Role;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long the services get to learn about the seeded accounts.
const DEADLINE: Duration = Duration::from_secs(60);

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn login(&self, u: &SeededUser) -> anyhow::Result<String> {
        let r: Value = self
            .http
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"email": u.email, "password": u.password, "refresh_token_in": "body"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        r["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no access token")
    }

    /// Sends a request until it answers 2xx (the services learn about accounts through
    /// streams, so the first tries may find nothing yet) or the deadline passes.
    async fn until_ok(
        &self,
        what: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            let r = make().send().await?;
            if r.status().is_success() {
                return Ok(r.json().await.unwrap_or(Value::Null));
            }
            let (status, body) = (r.status(), r.text().await.unwrap_or_default());
            anyhow::ensure!(started.elapsed() < DEADLINE, "{what}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Gives the seeded doctors specialties and hours and creates the two groups.
///
/// # Errors
/// When the API refuses a step until the deadline.
pub(crate) async fn furnish(base: &str, users: &[SeededUser]) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::new(),
        base: base.to_owned(),
    };
    let weekly: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday"]
        .iter()
        .map(|d| json!({"weekday": d, "start": "09:00", "end": "17:00"}))
        .collect();
    let mut doctors: Vec<(&'static str, String)> = Vec::new();
    for (i, d) in users.iter().filter(|u| u.role == Role::Doctor).enumerate() {
        let token = api.login(d).await?;
        let url = format!("{base}/api/doctors/me/profile");
        let profile = api
            .until_ok("doctor profile", || api.http.get(&url).bearer_auth(&token))
            .await?;
        let id = profile["id"]
            .as_str()
            .context("profile without an id")?
            .to_owned();
        let specialty = d.specialty.unwrap_or("general-practice");
        let body = json!({"specialties": [specialty], "bio": format!("{} sees patients on weekdays.", d.name)});
        api.until_ok("doctor profile update", || {
            api.http.put(&url).bearer_auth(&token).json(&body)
        })
        .await?;
        let url = format!("{base}/api/doctors/me/availability");
        let current = api
            .until_ok("availability", || api.http.get(&url).bearer_auth(&token))
            .await?;
        let body = json!({"expected_version": current["version"], "time_zone": "Europe/Berlin",
            "weekly": weekly, "slot_minutes": 30, "auto_accept": i == 0});
        api.until_ok("availability update", || {
            api.http.put(&url).bearer_auth(&token).json(&body)
        })
        .await?;
        doctors.push((specialty, id));
    }
    let admin = users
        .iter()
        .find(|u| u.role == Role::Admin)
        .context("no demo admin")?;
    let token = api.login(admin).await?;
    for (specialty, name, strategy) in [
        ("cardiology", "Cardiology", "round_robin"),
        ("dermatology", "Dermatology", "broadcast"),
    ] {
        let members: Vec<&str> = doctors
            .iter()
            .filter(|(s, _)| *s == specialty)
            .map(|(_, id)| id.as_str())
            .collect();
        let body = json!({"name": name, "specialty": specialty, "strategy": strategy,
            "accept_deadline_secs": 3600, "members": members});
        let url = format!("{base}/api/admin/groups");
        api.until_ok("group", || {
            api.http.post(&url).bearer_auth(&token).json(&body)
        })
        .await?;
    }
    Ok(())
}
