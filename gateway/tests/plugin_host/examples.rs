//! The example plugins on real events, their config validation, and chains.

use hookgate::plugin::{ChainStep, PluginHandle};

use super::*;

#[tokio::test]
async fn example_plugins_transform_real_events() {
    let (p, host) = (plugins(), host());

    let (body, headers) = forwarded(run(&host, &p.template, &task(), &[]).await);
    assert_eq!(body, task());
    assert_eq!(header(&headers, "x-team"), Some("billing"));

    let keep = [("field", "/task/status"), ("op", "eq"), ("value", "done")];
    assert_eq!(forwarded(run(&host, &p.event_filter, &task(), &keep).await).0, task());
    let rules = r#"[{"field": "/task/status", "op": "eq", "value": "done"}, {"field": "/task/priority", "op": "gt", "value": 5}]"#;
    match run(&host, &p.event_filter, &task(), &[("rules", rules)]).await {
        Ok(PluginVerdict::Drop { reason }) => {
            assert_eq!(reason, "rule 2 did not hold: /task/priority gt 5")
        }
        other => panic!("{other:?}"),
    }

    let (body, _) = forwarded(
        run(
            &host,
            &p.redact,
            &task(),
            &[("fields", "/task/owner/email,/task/title")],
        )
        .await,
    );
    assert_eq!(
        body,
        json!({"task": {"id": 7, "status": "done", "priority": 3, "owner": {"name": "Ann"}}})
    );
    let (body, _) = forwarded(
        run(
            &host,
            &p.redact,
            &task(),
            &[("fields", "/task/owner/email"), ("mask", "***")],
        )
        .await,
    );
    assert_eq!(body["task"]["owner"]["email"], "***");

    let (body, headers) = forwarded(run(&host, &p.cloudevents, &task(), &[]).await);
    assert_eq!(
        body,
        json!({"specversion": "1.0", "id": EVENT_ID, "source": "hookgate/orders", "type": "task.completed",
               "time": "2024-04-11T06:56:45.207Z", "datacontenttype": "application/json", "data": task()})
    );
    assert_eq!(header(&headers, "content-type"), Some("application/cloudevents+json"));

    let template = "*{{type}}*: {{/task/title}} is {{/task/status}} ({{/task/missing}})";
    let (body, headers) = forwarded(run(&host, &p.slack, &task(), &[("template", template), ("missing", "-")]).await);
    assert_eq!(body, json!({"text": "*task.completed*: Ship &lt;v2&gt; is done (-)"}));
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
}

#[tokio::test]
async fn validate_config_rejections_are_config_errors() {
    let (p, host) = (plugins(), host());
    for (plugin, cfg, needle) in [
        (
            &p.event_filter,
            vec![("field", "/a"), ("op", "like"), ("value", "x")],
            "unknown op",
        ),
        (&p.redact, vec![], "`fields` is required"),
        (&p.slack, vec![("template", "{{nope}}")], "unknown placeholder"),
        (&p.cloudevents, vec![("sorce", "x")], "unknown config key"),
        (&p.template, vec![("x", "1")], "unknown config key"),
    ] {
        let handle = host.load(plugin, None).unwrap();
        match host
            .validate_config(&handle, &config(&cfg), PluginLimits::default())
            .await
        {
            Err(PluginError::Config(m)) => assert!(m.contains(needle), "{}: {m}", plugin.display()),
            other => panic!("{}: {other:?}", plugin.display()),
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_guest_error() {
    let (p, host) = (plugins(), host());
    let handle = host.load(&p.redact, None).unwrap();
    let mut bad = input(&json!(null));
    bad.body = Bytes::from_static(b"not json");
    let err = host
        .call(&handle, bad, &config(&[("fields", "/a")]), PluginLimits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PluginError::Guest(m) if m.contains("not the expected JSON")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_chain_feeds_each_plugin_the_previous_output() {
    let (p, host) = (plugins(), host());
    let load = |path: &Path| host.load(path, None).unwrap();
    let (filter, redact, ce, panics): (PluginHandle, PluginHandle, PluginHandle, PluginHandle) = (
        load(&p.event_filter),
        load(&p.redact),
        load(&p.cloudevents),
        load(&p.hostile_panic),
    );
    let keep_done = config(&[("field", "/task/status"), ("op", "eq"), ("value", "done")]);
    let strip = config(&[("fields", "/task/owner")]);
    let step = |plugin, config, skip_on_error| ChainStep {
        plugin,
        config,
        limits: PluginLimits::default(),
        skip_on_error,
    };

    let steps = [
        step(&filter, &keep_done[..], false),
        step(&panics, &[][..], true),
        step(&redact, &strip[..], false),
        step(&ce, &[][..], false),
    ];
    let (body, headers) = forwarded(host.run_chain(&steps, input(&task())).await.map_err(|(_, e)| e));
    assert_eq!(
        body["data"],
        json!({"task": {"id": 7, "title": "Ship <v2>", "status": "done", "priority": 3}})
    );
    assert_eq!(header(&headers, "content-type"), Some("application/cloudevents+json"));

    let mut open = task();
    open["task"]["status"] = json!("open");
    assert!(matches!(
        host.run_chain(&steps, input(&open)).await,
        Ok(PluginVerdict::Drop { .. })
    ));

    let failing = [step(&redact, &strip[..], false), step(&panics, &[][..], false)];
    assert!(matches!(
        host.run_chain(&failing, input(&task())).await,
        Err((1, PluginError::Trap(_)))
    ));
}
