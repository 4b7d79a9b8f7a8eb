use cip_core::model::Role;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;

both_backends!(roles_and_keys);

async fn roles_and_keys(b: Backend) {
    let app = spawn_app(b).await;
    let (id, _) = app.create_customer(&individual("au")).await;
    let path = format!("/v1/customers/{id}");

    // No key, garbage key, well-formed but unknown key: 401 as JSON.
    let resp = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["code"], "CIP-AUTH-0001");
    for bad in [
        "nonsense",
        "cip_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(app.get(&path, bad).await.status(), 401);
    }

    // Roles: auditor reads but cannot write; integration writes but cannot list or read audit.
    let auditor = app.key(Role::Auditor).await;
    let integration = app.key(Role::Integration).await;
    let analyst = app.key(Role::Analyst).await;
    assert_eq!(app.get(&path, &auditor).await.status(), 200);
    let resp = app.post("/v1/customers", &auditor, &individual("x")).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "CIP-AUTH-0002");
    assert_eq!(
        app.post("/v1/customers", &integration, &individual("y"))
            .await
            .status(),
        201
    );
    assert_eq!(app.get("/v1/customers", &integration).await.status(), 403);
    assert_eq!(app.get("/v1/audit", &integration).await.status(), 403);
    assert_eq!(app.get("/v1/audit", &analyst).await.status(), 403);
    assert_eq!(app.get("/v1/audit", &auditor).await.status(), 200);
    assert_eq!(app.get("/v1/customers", &analyst).await.status(), 200);

    // Revocation takes effect at once.
    let key_id = integration.split('_').nth(1).unwrap().to_string();
    let revoked = app
        .state
        .store
        .revoke_api_key(
            &key_id,
            1,
            cip_store::conformance::draft("api_key.revoke", Some(key_id.clone())),
        )
        .await
        .unwrap();
    assert!(revoked);
    assert_eq!(app.get(&path, &integration).await.status(), 401);

    // Every route but health needs a key.
    for p in [
        "/v1/customers",
        "/v1/accounts",
        "/v1/audit",
        "/v1/audit/verify",
        "/metrics",
    ] {
        assert_eq!(
            app.client.get(app.url(p)).send().await.unwrap().status(),
            401,
            "{p} must need a key"
        );
    }
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.cleanup().await;
}
