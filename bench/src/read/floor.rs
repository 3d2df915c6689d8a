//! The floor of each hot read: a separate process (`carehub-bench read-floor`, started by
//! `carehub-bench read`) so that its CPU time is read apart from carehub's. One axum server
//! and one async-nats connection to the benchmark's nats-server: each HTTP request is sent as a
//! NATS request to a queue subscriber of the same connection, which runs the SQL the carehub
//! service runs for that read against the same PostgreSQL database and answers the rows as
//! JSON. No authentication, no logs, no conversion of the rows: what is left of the read when
//! carehub's own work is taken out.
//!
//! It talks with the bench over its standard streams: the bench sends a [`Plan`] as one JSON
//! line (the NATS password goes this way, never in the command line), the floor answers
//! `read-floor: ready` once it listens and has subscribed (its log, warnings only, shares
//! standard output); end of input ends it.
//!
//! Routes (`{id}` is the patient, or the doctor for slots; the same ids and parameters the
//! gateway path uses): `GET /profile/{id}`, `GET /appointments/{id}?limit=`,
//! `GET /notifications/{id}?limit=`, `GET /unread-count/{id}`,
//! `GET /slots/{id}?from=&to=&patient=`.

use crate::cluster::nats_connect;
use anyhow::Context as _;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use carehub_runtime::Db;
use carehub_runtime::db::next_page;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Starts the floor's answer on its standard output.
const ANSWER: &str = "read-floor: ";
/// How long the floor may take to connect and listen.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// The NATS subjects of the floor: `<prefix>.<route>`.
const SUBJECT_PREFIX: &str = "carehub-floor";
/// The queue group of every floor subscriber.
const QUEUE: &str = "floor";
/// A subscriber's failure, as a header of its empty reply.
const ERROR_HEADER: &str = "Floor-Error";

/// What the floor connects to.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// The benchmark's nats-server, with the credentials of a user with every right.
    pub(crate) nats_url: String,
    /// Where the floor's HTTP server listens.
    pub(crate) addr: SocketAddr,
    /// The database URLs of the patient, admin and notify services (each opened as that
    /// service opens it: its own schema, a pool of the same size).
    pub(crate) patient_db: String,
    pub(crate) admin_db: String,
    pub(crate) notify_db: String,
}

/// The parameters of one floor request: the HTTP path's id and query, sent over NATS.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Ask {
    id: String,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    patient: Option<String>,
}

/// The floor's query parameters (all optional; each route reads its own).
#[derive(Debug, Deserialize)]
struct Params {
    limit: Option<u32>,
    from: Option<String>,
    to: Option<String>,
    patient: Option<String>,
}

/// The routes, each with its own subject.
const ROUTES: [&str; 5] = [
    "profile",
    "appointments",
    "notifications",
    "unread-count",
    "slots",
];

/// The three services' databases.
#[derive(Clone)]
struct Pools {
    patient: PgPool,
    admin: PgPool,
    notify: PgPool,
}

/// The floor process's main: see the module documentation.
///
/// # Errors
/// When the plan cannot be read, NATS, PostgreSQL or the port cannot be had, or standard
/// output is gone.
pub(crate) async fn run() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let plan: Plan = serde_json::from_str(&lines.next_line().await?.context("no plan on stdin")?)
        .context("reading the plan")?;
    let pools = Pools {
        patient: pool("patient", &plan.patient_db).await?,
        admin: pool("admin", &plan.admin_db).await?,
        notify: pool("notify", &plan.notify_db).await?,
    };
    let nc = nats_connect(&plan.nats_url).await?;
    for route in ROUTES {
        let sub = nc
            .queue_subscribe(format!("{SUBJECT_PREFIX}.{route}"), QUEUE.to_owned())
            .await
            .with_context(|| format!("subscribing the {route} floor"))?;
        tokio::spawn(serve_subject(nc.clone(), sub, route, pools.clone()));
    }
    nc.flush().await.context("flushing the subscriptions")?;
    let listener = tokio::net::TcpListener::bind(plan.addr)
        .await
        .with_context(|| format!("listening on {}", plan.addr))?;
    let app = axum::Router::new()
        .route("/{route}/{id}", axum::routing::get(forward))
        .with_state(nc);
    let mut out = tokio::io::stdout();
    out.write_all(format!("{ANSWER}ready\n").as_bytes()).await?;
    out.flush().await?;
    tokio::select! {
        r = axum::serve(listener, app) => r.context("the floor's HTTP server")?,
        // End of input: the bench is done.
        _ = async { while let Ok(Some(_)) = lines.next_line().await {} } => {}
    }
    Ok(())
}

/// `service`'s database as that service opens it (its schema, a pool of the same size).
async fn pool(service: &str, url: &str) -> anyhow::Result<PgPool> {
    match Db::connect(service, Some(url), &std::env::temp_dir()).await? {
        Db::Postgres(p) => Ok(p),
        Db::Sqlite(_) => anyhow::bail!("the floor runs on PostgreSQL only, not {url}"),
    }
}

/// The HTTP side: the path's id and the query become one NATS request to the route's
/// subject; the reply is the response body.
async fn forward(
    State(nc): State<async_nats::Client>,
    Path((route, id)): Path<(String, String)>,
    Query(p): Query<Params>,
) -> Response {
    let ask = Ask {
        id,
        limit: p.limit,
        from: p.from,
        to: p.to,
        patient: p.patient,
    };
    let payload = match serde_json::to_vec(&ask) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match nc
        .request(format!("{SUBJECT_PREFIX}.{route}"), payload.into())
        .await
    {
        Ok(m) => match m.headers.as_ref().and_then(|h| h.get(ERROR_HEADER)) {
            Some(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            None => ([(header::CONTENT_TYPE, "application/json")], m.payload).into_response(),
        },
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The NATS side: each request of `route` is answered by its own task.
async fn serve_subject(
    nc: async_nats::Client,
    mut sub: async_nats::Subscriber,
    route: &'static str,
    pools: Pools,
) {
    while let Some(m) = sub.next().await {
        let (nc, pools) = (nc.clone(), pools.clone());
        tokio::spawn(async move {
            let Some(reply) = m.reply else { return };
            let answer = match serde_json::from_slice::<Ask>(&m.payload) {
                Ok(ask) => answer(route, &ask, &pools).await,
                Err(e) => Err(e.into()),
            };
            // A reply that cannot be sent leaves the requester to its timeout.
            let _ = match answer {
                Ok(json) => nc.publish(reply, json.into()).await,
                Err(e) => {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(ERROR_HEADER, format!("{e:#}").as_str());
                    nc.publish_with_headers(reply, headers, Vec::new().into())
                        .await
                }
            };
        });
    }
}

/// The rows of one read as JSON.
async fn answer(route: &str, ask: &Ask, pools: &Pools) -> anyhow::Result<Vec<u8>> {
    let json = match route {
        "profile" => serde_json::to_vec(&profile(&pools.patient, &ask.id).await?)?,
        "appointments" => serde_json::to_vec(&appointments(&pools.admin, ask).await?)?,
        "notifications" => serde_json::to_vec(&notifications(&pools.notify, ask).await?)?,
        "unread-count" => serde_json::to_vec(&unread_count(&pools.notify, &ask.id).await?)?,
        "slots" => serde_json::to_vec(&doctor_and_taken(&pools.admin, ask).await?)?,
        other => anyhow::bail!("no floor for {other}"),
    };
    Ok(json)
}

/// The page size asked for (20 when absent); the services fetch one row more, to tell
/// whether a next page exists, and [`next_page`] cuts it off.
fn page(limit: Option<u32>) -> i64 {
    i64::from(limit.unwrap_or(20))
}

/// A row of `patients` with the account's name.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct PatientRow {
    id: String,
    display_name: Option<String>,
    profile_version: i64,
    profile_updated_at: i64,
    date_of_birth: Option<String>,
    phone: Option<String>,
    address: Option<String>,
    emergency_contact: Option<String>,
    insurance: Option<String>,
    record_version: i64,
    record_updated_at: i64,
    allergies: String,
    conditions: String,
    medications: String,
    blood_type: String,
    notes: String,
}

/// `SELECT_PATIENT` of services/patient/src/store.rs (`GetMyProfile` reads the caller's row
/// with it).
const SELECT_PATIENT: &str = "SELECT p.id, a.display_name, p.profile_version, p.profile_updated_at,
        p.date_of_birth, p.phone, p.address, p.emergency_contact, p.insurance, p.record_version,
        p.record_updated_at, p.allergies, p.conditions, p.medications, p.blood_type, p.notes
    FROM patients p LEFT JOIN accounts a ON a.id = p.id WHERE p.id = $1";

async fn profile(db: &PgPool, patient: &str) -> anyhow::Result<Option<PatientRow>> {
    Ok(sqlx::query_as::<_, PatientRow>(SELECT_PATIENT)
        .bind(patient)
        .fetch_optional(db)
        .await?)
}

/// A row of the admin service's `appointments` (`status` as stored).
#[derive(Debug, Serialize, sqlx::FromRow)]
struct AppointmentRow {
    id: String,
    patient_id: String,
    doctor_id: Option<String>,
    group_id: Option<String>,
    specialty: Option<String>,
    target_kind: String,
    status: String,
    window_start: i64,
    window_end: i64,
    start_at: Option<i64>,
    end_at: Option<i64>,
    reason: String,
    closed_by: Option<String>,
    close_reason: Option<String>,
    in_admin_queue: bool,
    final_deadline: i64,
    created_at: i64,
    version: i64,
    change_by: Option<String>,
    change_window_start: Option<i64>,
    change_window_end: Option<i64>,
    change_start: Option<i64>,
    change_end: Option<i64>,
    last_call_started: Option<i64>,
    last_call_ended: Option<i64>,
    call_seconds: i64,
}

/// `list_appointments` of services/admin/src/store/requests.rs as it reads for a patient (its
/// statement for that kind of caller), with `APPT_COLS` of services/admin/src/store.rs written
/// out (`ListAppointments`). $1 patient, $2 status, $3 cursor, $4 limit.
const LIST_APPOINTMENTS: &str = "SELECT id, patient_id, doctor_id, group_id, specialty, target_kind, status, window_start, window_end, start_at, end_at, reason, closed_by, close_reason, in_admin_queue, final_deadline, created_at, version, change_by, change_window_start, change_window_end, change_start, change_end, last_call_started, last_call_ended, call_seconds FROM appointments a
         WHERE a.patient_id = $1 AND ($2 IS NULL OR a.status = $2) AND ($3 IS NULL OR a.id < $3)
         ORDER BY a.id DESC LIMIT $4";

/// A page of appointments with the names of the people on it.
#[derive(Debug, Serialize)]
struct AppointmentPage {
    appointments: Vec<AppointmentRow>,
    names: HashMap<String, String>,
    next_cursor: Option<String>,
}

/// The two statements the admin service runs for a patient's list: the page, then the names
/// of its patients and doctors.
async fn appointments(db: &PgPool, ask: &Ask) -> anyhow::Result<AppointmentPage> {
    let limit = page(ask.limit);
    let mut rows: Vec<AppointmentRow> = sqlx::query_as(LIST_APPOINTMENTS)
        .bind(&ask.id)
        .bind(None::<&str>)
        .bind(None::<&str>)
        .bind(limit + 1)
        .fetch_all(db)
        .await?;
    let next_cursor = next_page(&mut rows, limit, |a| a.id.clone());
    let mut ids: Vec<&str> = rows
        .iter()
        .flat_map(|a| [Some(a.patient_id.as_str()), a.doctor_id.as_deref()])
        .flatten()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let names = names(db, &ids).await?;
    Ok(AppointmentPage {
        appointments: rows,
        names,
        next_cursor,
    })
}

/// `names` of services/admin/src/store/people.rs: the doctor copy's names, then the accounts'
/// (which win).
async fn names(db: &PgPool, ids: &[&str]) -> anyhow::Result<HashMap<String, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut qb = sqlx::QueryBuilder::new(
        "SELECT doctor_id, display_name, 0 AS source FROM doctors WHERE doctor_id IN (",
    );
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    qb.push(") UNION ALL SELECT id, display_name, 1 AS source FROM people WHERE id IN (");
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    qb.push(") ORDER BY 3");
    let rows: Vec<(String, String, i32)> = qb.build_query_as().fetch_all(db).await?;
    Ok(rows.into_iter().map(|(id, name, _)| (id, name)).collect())
}

/// A row of the notify service's `notifications`.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct NotificationRow {
    id: String,
    user_id: String,
    kind: String,
    title: String,
    body: String,
    appointment_id: Option<String>,
    created_at: i64,
    read_at: Option<i64>,
}

/// `list` of services/notify/src/store.rs, with its `COLS` written out (`ListNotifications`).
const LIST_NOTIFICATIONS: &str =
    "SELECT id, user_id, kind, title, body, appointment_id, created_at, read_at FROM notifications
         WHERE user_id = $1 AND ($2 = FALSE OR read_at IS NULL) AND ($3 IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4";

#[derive(Debug, Serialize)]
struct NotificationPage {
    notifications: Vec<NotificationRow>,
    next_cursor: Option<String>,
}

async fn notifications(db: &PgPool, ask: &Ask) -> anyhow::Result<NotificationPage> {
    let limit = page(ask.limit);
    let mut rows: Vec<NotificationRow> = sqlx::query_as(LIST_NOTIFICATIONS)
        .bind(&ask.id)
        .bind(false)
        .bind(None::<&str>)
        .bind(limit + 1)
        .fetch_all(db)
        .await?;
    let next_cursor = next_page(&mut rows, limit, |n| n.id.clone());
    Ok(NotificationPage {
        notifications: rows,
        next_cursor,
    })
}

/// `unread_count` of services/notify/src/store.rs (`GetUnreadCount`).
const UNREAD_COUNT: &str =
    "SELECT CAST(COUNT(*) AS BIGINT) FROM notifications WHERE user_id = $1 AND read_at IS NULL";

#[derive(Debug, Serialize)]
struct Unread {
    unread: i64,
}

async fn unread_count(db: &PgPool, user: &str) -> anyhow::Result<Unread> {
    let unread = sqlx::query_scalar(UNREAD_COUNT)
        .bind(user)
        .fetch_one(db)
        .await?;
    Ok(Unread { unread })
}

/// The doctor's copy and the taken times of the window, as the admin service reads them.
#[derive(Debug, Serialize, sqlx::FromRow)]
struct DoctorAndTaken {
    doctor_id: String,
    display_name: String,
    specialties: String,
    approved: bool,
    auto_accept: bool,
    availability: String,
    version: i64,
    /// "start end start end …" in Unix milliseconds, or none.
    taken: Option<String>,
}

/// `doctor_and_taken` of services/admin/src/store/queries.rs with its `taken_pairs!` written
/// out: the one statement `ListFreeSlots` runs. $1 doctor, $2 from, $3 to, $4 patient, $5 the
/// earliest start that reaches into the window (`from` minus `LONGEST_APPOINTMENT_MS`).
const DOCTOR_AND_TAKEN: &str = "SELECT doctor_id, display_name, specialties, approved, auto_accept, availability, version, (SELECT string_agg(s || ' ' || e, ' ') FROM (
           SELECT start_at AS s, end_at AS e FROM appointments
             WHERE doctor_id = $1 AND status = 'confirmed'
               AND start_at > $5 AND start_at < $3 AND $2 < end_at
           UNION ALL
           SELECT change_start, change_end FROM appointments
             WHERE doctor_id = $1 AND status = 'confirmed' AND change_by = 'doctor'
               AND change_start > $5 AND change_start < $3 AND $2 < change_end
           UNION ALL
           SELECT start_at, end_at FROM appointments
             WHERE patient_id = $4 AND status = 'confirmed'
               AND start_at > $5 AND start_at < $3 AND $2 < end_at
         ) AS taken) AS taken FROM doctors WHERE doctor_id = $1";

/// `LONGEST_APPOINTMENT_MS` of services/admin/src/store/queries.rs.
const LONGEST_APPOINTMENT_MS: i64 = 24 * 3_600_000;

/// The statement behind the slot list, its rows as they come: the floor does not compute the
/// free slots from them (the admin service's slot walk is part of what the read costs).
async fn doctor_and_taken(db: &PgPool, ask: &Ask) -> anyhow::Result<Option<DoctorAndTaken>> {
    let time = |name: &str, v: Option<&String>| -> anyhow::Result<i64> {
        let v = v.with_context(|| format!("no {name}"))?;
        Ok(chrono::DateTime::parse_from_rfc3339(v)
            .with_context(|| format!("{name}: {v}"))?
            .timestamp_millis())
    };
    let (from, to) = (
        time("from", ask.from.as_ref())?,
        time("to", ask.to.as_ref())?,
    );
    Ok(sqlx::query_as(DOCTOR_AND_TAKEN)
        .bind(&ask.id)
        .bind(from)
        .bind(to)
        .bind(ask.patient.as_deref())
        .bind(from - LONGEST_APPOINTMENT_MS)
        .fetch_optional(db)
        .await?)
}

/// The bench's side of the floor process.
pub(crate) struct FloorProcess {
    child: Child,
    /// Closing it ends the floor.
    stdin: Option<ChildStdin>,
    /// `http://<addr>`.
    pub(crate) base: String,
}

impl std::fmt::Debug for FloorProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloorProcess")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl FloorProcess {
    /// Starts `carehub-bench read-floor` (logging into `log`, warnings only), hands it `plan`
    /// and waits until it is ready.
    ///
    /// # Errors
    /// When the process cannot start or is not ready in time (the error carries its log).
    pub(crate) async fn start(plan: &Plan, log: &FsPath) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the carehub-bench executable")?;
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(exe)
            .arg("read-floor")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .context("starting the floor")?;
        let mut stdin = child.stdin.take().context("the floor's stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("the floor's stdout")?).lines();
        let mut line = serde_json::to_vec(plan)?;
        line.push(b'\n');
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        let ready = tokio::time::timeout(READY_DEADLINE, async {
            while let Some(line) = stdout.next_line().await? {
                if line.starts_with(ANSWER) {
                    return Ok(true);
                }
            }
            Ok::<_, std::io::Error>(false)
        })
        .await;
        if !matches!(ready, Ok(Ok(true))) {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            anyhow::bail!("the floor did not become ready; its log:\n{log_text}");
        }
        // Its log shares standard output: copied into its log file, so the pipe never fills.
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(log)
            .await
            .with_context(|| format!("opening {}", log.display()))?;
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if file
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            stdin: Some(stdin),
            base: format!("http://{}", plan.addr),
        })
    }

    /// The floor's process id.
    ///
    /// # Errors
    /// When it has exited.
    pub(crate) fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("the floor has exited")
    }

    /// Ends the floor and waits for it to exit.
    pub(crate) async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The floor's log file in `dir`.
pub(crate) fn log_path(dir: &FsPath) -> PathBuf {
    dir.join("read-floor.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_travels_as_json_with_only_the_id_required() {
        let ask: Ask = serde_json::from_str(r#"{"id":"p1"}"#).unwrap();
        assert_eq!(ask.id, "p1");
        assert!(ask.limit.is_none() && ask.patient.is_none());
    }
}
