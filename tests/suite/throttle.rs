//! Login throttling per (account, client address), shared by auth instances.

use crate::both_backends;
use crate::harness::{Backend, Clinic, PASSWORD, client, error_code, unique_email};
use carehub::system::Component;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};

both_backends!(
    ten_wrong_passwords_from_one_address_are_throttled_but_another_address_still_signs_in,
);

async fn ten_wrong_passwords_from_one_address_are_throttled_but_another_address_still_signs_in(
    b: Backend,
) {
    let mut clinic = Clinic::start(b).await;
    // A second auth instance: the failures are spread over both, the count must still hold.
    clinic.start_more(&[], &[Component::Auth]).await;
    let email = unique_email("guess");
    clinic.patient(&email).await;
    let attacker = client(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    for i in 0..10 {
        let r = clinic
            .try_login(&attacker, &email, &format!("wrong password {i}"))
            .await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    let r = clinic.try_login(&attacker, &email, PASSWORD).await;
    assert_eq!(
        r.status(),
        429,
        "the 11th attempt from the same address is throttled, even with the right password"
    );
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(error_code(r).await, "rate_limited");

    // A forged forwarding header from an untrusted peer changes nothing.
    let spoofed = attacker
        .post(clinic.url("/api/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .json(&json!({"email": email, "password": PASSWORD, "refresh_token_in": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 429);

    // The real user, elsewhere, is not locked out.
    let elsewhere = client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    let r = clinic.try_login(&elsewhere, &email, PASSWORD).await;
    assert_eq!(r.status(), 200, "the right password from 127.0.0.2 works");
}
