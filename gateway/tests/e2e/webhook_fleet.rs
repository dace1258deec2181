//! Many webhooks, many gateways: `GET /api/webhooks` pages like the
//! delivery history; gateways on one Redis apply each other's creates,
//! updates and deletes from the change log without a restart; a gateway
//! whose applied changes a Redis failover lost loads everything again by
//! itself.

use std::time::Duration;

use hookgate::webhooks::{StoredSecret, StoredWebhook, WebhookSpec};
use hookgate_testkit::{Receiver, RedisServer, wait_until};
use serde_json::{Value, json};

use crate::common::*;

/// How long a change may take to reach another gateway in these tests
/// (generous: the refresh interval is a fraction of a second).
const SPREAD: Duration = Duration::from_secs(10);

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn create(gw: &Gateway, url: &str, events: &[&str]) -> String {
    let (status, _, body) = gw
        .api(
            "POST",
            "/api/webhooks",
            Some(json!({"name": "fleet", "url": url, "events": events})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// The webhooks `gw` fans an event of type `t` out to right now.
async fn routes(gw: &Gateway, t: &str) -> Vec<String> {
    let answer = gw.post_event(t, "{}").await;
    answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["webhookId"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `gw` routes `t` to exactly `expected`.
async fn wait_routes(gw: &Gateway, t: &str, expected: &[&str], what: &str) {
    wait_until(SPREAD, what, || async {
        let got = routes(gw, t).await;
        (got == expected).then_some(())
    })
    .await;
}

/// Every page of `GET /api/webhooks?limit=N`, as lists of ids.
async fn pages(gw: &Gateway, limit: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/webhooks?limit={limit}&cursor={c}"),
            None => format!("/api/webhooks?limit={limit}"),
        };
        let (status, _, page) = gw.api("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        out.push(ids(&page));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
        assert!(out.len() < 100, "pages never end");
    }
}

async fn webhook_list_pages_like_the_delivery_history(backend: Backend) {
    let db = TestStore::start(backend);
    let rx = Receiver::start().await;
    let hooks = [
        webhook("cfg-b", &rx.url("/b"), &["x.*"], ""),
        webhook("cfg-a", &rx.url("/a"), &["x.*"], ""),
    ]
    .concat();
    let (toml, _) = config_toml(&db, FAST_DELIVERY, &hooks);
    let gw = Gateway::start(&toml).await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(create(&gw, &rx.url("/api"), &[&format!("t{i}.*")]).await);
    }
    let mut everything = vec!["cfg-b".to_owned(), "cfg-a".to_owned()];
    everything.extend(made.iter().cloned());

    // Under the default page size: one page, config webhooks first in
    // definition order, then API ones by creation, and no next cursor.
    let (status, _, all) = gw.api("GET", "/api/webhooks", None).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&all), everything);
    assert_eq!(all["nextCursor"], Value::Null);
    assert_eq!(all["data"][0]["source"], "config");

    let paged = pages(&gw, 3).await;
    assert_eq!(paged.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(paged.concat(), everything);
    assert_eq!(
        pages(&gw, 7).await,
        [everything.clone()],
        "an exact fit has no empty last page"
    );

    // A cursor outlives the webhook it names, and webhooks created after
    // it come on later pages.
    let (_, _, first) = gw.api("GET", "/api/webhooks?limit=3", None).await;
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    assert_eq!(ids(&first).last(), Some(&made[0]));
    let (status, _, _) = gw.api("DELETE", &format!("/api/webhooks/{}", made[0]), None).await;
    assert_eq!(status, 204);
    let late = create(&gw, &rx.url("/late"), &["late.*"]).await;
    let (_, _, rest) = gw
        .api("GET", &format!("/api/webhooks?limit=10&cursor={cursor}"), None)
        .await;
    let mut expected: Vec<String> = made[1..].to_vec();
    expected.push(late);
    assert_eq!(ids(&rest), expected);
    assert_eq!(rest["nextCursor"], Value::Null);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("cursor=nope", "cursor"),
        ("cursor=2.1.wh_x", "cursor"),
        ("cursor=dlv_01K0000000000000000000000", "cursor"),
    ] {
        let (status, _, body) = gw.api("GET", &format!("/api/webhooks?{query}"), None).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().starts_with(field),
            "{query}: {body}"
        );
    }

    // A client that does not page still sees every webhook; one that
    // passes a cursor alone gets pages of 50.
    for i in 0..50 {
        create(&gw, &rx.url("/more"), &[&format!("more{i}.*")]).await;
    }
    let (_, _, whole) = gw.api("GET", "/api/webhooks", None).await;
    assert_eq!(ids(&whole).len(), 2 + 4 + 1 + 50, "every webhook without limit");
    assert_eq!(whole["nextCursor"], Value::Null);
    let (_, _, next) = gw.api("GET", &format!("/api/webhooks?cursor={cursor}"), None).await;
    assert_eq!(ids(&next).len(), 50, "a cursor alone pages by 50");
    assert!(next["nextCursor"].is_string());
    gw.stop().await;
}

on_both_backends!(webhook_list_pages_like_the_delivery_history);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_on_one_redis_apply_each_others_creates_updates_and_deletes() {
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    let (toml, _) = config_toml(&redis, FAST_DELIVERY, "");
    let a = Gateway::start(&toml).await;
    let b = Gateway::start(&toml).await;

    let one = create(&a, &rx.url("/one"), &["fleet.one"]).await;
    wait_routes(&b, "fleet.one", &[&one], "gateway b to route to the webhook a created").await;
    let two = create(&b, &rx.url("/two"), &["fleet.two.*"]).await;
    wait_routes(
        &a,
        "fleet.two.x",
        &[&two],
        "gateway a to route to the webhook b created",
    )
    .await;

    let (status, _, body) = a
        .api(
            "PATCH",
            &format!("/api/webhooks/{one}"),
            Some(json!({"events": ["fleet.three"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_routes(&b, "fleet.three", &[&one], "gateway b to apply a's update").await;
    assert!(routes(&b, "fleet.one").await.is_empty(), "the old subscription is gone");

    let (status, _, _) = b.api("DELETE", &format!("/api/webhooks/{one}"), None).await;
    assert_eq!(status, 204);
    wait_routes(&a, "fleet.three", &[], "gateway a to apply b's delete").await;

    let (status, _, _) = a
        .api(
            "PATCH",
            &format!("/api/webhooks/{two}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    wait_routes(&b, "fleet.two.x", &[], "gateway b to see the webhook disabled").await;

    let (_, _, on_a) = a.api("GET", "/api/webhooks", None).await;
    let (_, _, on_b) = b.api("GET", "/api/webhooks", None).await;
    assert_eq!(ids(&on_a), [two]);
    assert_eq!(ids(&on_a), ids(&on_b));
    a.stop().await;
    b.stop().await;
}

fn stored(id: &str, url: &str, events: &[&str]) -> StoredWebhook {
    StoredWebhook {
        id: id.into(),
        spec: WebhookSpec {
            name: id.into(),
            url: url.into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            test_mode: false,
            enabled: true,
            rate_limit_per_minute: None,
            max_retries: None,
            timeout_ms: None,
            headers: Default::default(),
            client_identity: None,
            plugins: Vec::new(),
        },
        secrets: vec![StoredSecret {
            secret: "secret-failover".into(),
            expires_at: None,
        }],
        created_at: hookgate::store::now_ms(),
        updated_at: hookgate::store::now_ms(),
    }
}

/// A failover to a replica that missed the last changes, which then takes
/// new changes under the same numbers: the gateway notices that the entry
/// it last applied is not in the log any more and loads everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_resyncs_after_a_failover_lost_changes_it_had_applied() {
    let redis = RedisServer::start();
    let rx = Receiver::start().await;
    let (toml, prefix) = config_toml(&redis, FAST_DELIVERY, "");
    let gw = Gateway::start(&toml).await;
    let mut conn = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let kept = create(&gw, &rx.url("/kept"), &["fo.kept"]).await;
    // What the replica has: everything up to here.
    let keys: Vec<String> = ["webhooks", "webhooks:version", "webhooks:log"]
        .iter()
        .map(|k| format!("{prefix}:{k}"))
        .collect();
    let mut replica: Vec<Vec<u8>> = Vec::new();
    for k in &keys {
        let dump: Vec<u8> = ::redis::cmd("DUMP").arg(k).query_async(&mut conn).await.unwrap();
        replica.push(dump);
    }
    let lost = create(&gw, &rx.url("/lost"), &["fo.lost"]).await;
    assert_eq!(routes(&gw, "fo.lost").await, [lost]);

    // The failover: the store is the replica again, and a writer makes a
    // new change that takes the number of the lost one.
    for (k, dump) in keys.iter().zip(&replica) {
        let () = ::redis::cmd("RESTORE")
            .arg(k)
            .arg(0)
            .arg(dump)
            .arg("REPLACE")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let store = store(&redis, &prefix);
    assert!(
        store
            .insert_webhook(&stored("wh_after", &rx.url("/after"), &["fo.after"]))
            .await
            .unwrap()
    );

    wait_routes(
        &gw,
        "fo.after",
        &["wh_after"],
        "the gateway to take the change made after the failover",
    )
    .await;
    assert!(routes(&gw, "fo.lost").await.is_empty(), "the lost webhook is gone");
    let (_, _, list) = gw.api("GET", "/api/webhooks", None).await;
    assert_eq!(ids(&list), [kept, "wh_after".to_owned()]);
    gw.stop().await;
}
