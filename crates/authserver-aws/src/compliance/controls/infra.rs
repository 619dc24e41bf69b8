//! The infrastructure controls: `log-groups`, `function-tracing`, `function-not-public`.

use super::{cannot, control};
use crate::compliance::policy::{Open, open_statements};
use crate::compliance::{Clients, Control, Target};
use crate::retry::{CallError, classify, with_retries};
use aws_sdk_lambda::types::TracingMode;
use std::collections::BTreeSet;

/// The deployment's functions (`<svc>-<stage>-<name>`) and whether each must exist.
const FUNCTIONS: &[(&str, bool)] = &[
    ("proxy", true),
    ("authorizer", false),
    ("rotation", true),
    ("compliance", true),
];

/// One log group as inspected.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub name: String,
    pub retention: Option<i32>,
    pub kms_key: Option<String>,
}

/// The deployment's log groups: `/aws/lambda/<prefix>*`, `/aws/apigateway/<prefix>*`,
/// `aws-waf-logs-<svc>-<stage>`.
pub(super) async fn log_groups(clients: &Clients, target: &Target) -> Result<Vec<Group>, CallError> {
    let prefix = target.prefix();
    let mut groups = Vec::new();
    for p in [
        format!("/aws/lambda/{prefix}"),
        format!("/aws/apigateway/{prefix}"),
        format!("aws-waf-logs-{}-{}", target.service, target.stage),
    ] {
        let mut next: Option<String> = None;
        loop {
            let token = next.clone();
            let out = with_retries(&target.retry, || async {
                clients
                    .logs
                    .describe_log_groups()
                    .log_group_name_prefix(&p)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| classify("DescribeLogGroups", &e))
            })
            .await?;
            groups.extend(out.log_groups().iter().map(|g| Group {
                name: g.log_group_name().unwrap_or_default().to_owned(),
                retention: g.retention_in_days(),
                kms_key: g.kms_key_id().map(str::to_owned),
            }));
            next = out.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
    }
    Ok(groups)
}

/// `log-groups`.
pub(super) fn log_group_control(target: &Target, groups: &Result<Vec<Group>, CallError>) -> Control {
    let min = target.min_log_retention_days;
    let findings = match groups {
        Err(e) => vec![(false, cannot(e))],
        Ok(groups) => {
            let mut findings: Vec<(bool, String)> = groups
                .iter()
                .map(|g| {
                    let retention = match g.retention {
                        Some(days) if u32::try_from(days).is_ok_and(|d| d >= min) => {
                            (true, format!("retention {days} days"))
                        }
                        Some(days) => (false, format!("retention {days} days (at least {min})")),
                        None => (false, "no retention (never expires)".to_owned()),
                    };
                    let kms = match &g.kms_key {
                        Some(key) => (true, format!("KMS key {key}")),
                        None => (false, "no KMS key".to_owned()),
                    };
                    (
                        retention.0 && kms.0,
                        format!("{}: {}, {}", g.name, retention.1, kms.1),
                    )
                })
                .collect();
            let proxy = format!("/aws/lambda/{}proxy", target.prefix());
            if !groups.iter().any(|g| g.name == proxy) {
                findings.push((false, format!("{proxy}: missing")));
            }
            findings
        }
    };
    control(
        "log-groups",
        "Log groups have a retention of at least the minimum and a KMS key",
        Some("3.5 by analogy (logs encrypted at rest with KMS CMKs)"),
        findings,
    )
}

/// The function's configuration, `Ok(None)` when it does not exist.
async fn function(
    clients: &Clients,
    target: &Target,
    name: &str,
) -> Result<
    Option<aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput>,
    CallError,
> {
    let out = with_retries(&target.retry, || async {
        match clients
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) => match classify("GetFunctionConfiguration", &e) {
                c if c.code.as_deref() == Some("ResourceNotFoundException") => Ok(None),
                c => Err(c),
            },
        }
    })
    .await?;
    Ok(out)
}

/// `function-tracing`.
pub(super) async fn tracing(clients: &Clients, target: &Target) -> Control {
    let mut findings = Vec::new();
    for (short, required) in FUNCTIONS {
        let name = format!("{}{short}", target.prefix());
        findings.push(match function(clients, target, &name).await {
            Ok(Some(f)) => {
                let mode = f.tracing_config().and_then(|t| t.mode());
                let active = mode == Some(&TracingMode::Active);
                let shown = mode.map_or("unset", |m| m.as_str());
                (active, format!("{name}: tracing {shown}"))
            }
            Ok(None) if *required => (false, format!("{name}: not found")),
            Ok(None) => (true, format!("{name}: not deployed (optional)")),
            Err(e) => (false, format!("{name}: {}", cannot(&e))),
        });
    }
    control(
        "function-tracing",
        "X-Ray tracing active on every function",
        None,
        findings,
    )
}

/// The resource policy of `name` (qualified or not), `Ok(None)` when it has none.
async fn policy(
    clients: &Clients,
    target: &Target,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Option<String>, CallError> {
    with_retries(&target.retry, || async {
        let request = clients
            .lambda
            .get_policy()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_owned));
        match request.send().await {
            Ok(out) => Ok(out.policy().map(str::to_owned)),
            Err(e) => match classify("GetPolicy", &e) {
                c if c.code.as_deref() == Some("ResourceNotFoundException") => Ok(None),
                c => Err(c),
            },
        }
    })
    .await
}

/// `function-not-public`: the function and its `live` alias.
pub(super) async fn not_public(clients: &Clients, target: &Target) -> Control {
    let mut findings = Vec::new();
    for (short, required) in FUNCTIONS {
        let name = format!("{}{short}", target.prefix());
        match function(clients, target, &name).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                findings.push((
                    !required,
                    format!(
                        "{name}: {}",
                        if *required {
                            "not found"
                        } else {
                            "not deployed (optional)"
                        }
                    ),
                ));
                continue;
            }
            Err(e) => {
                findings.push((false, format!("{name}: {}", cannot(&e))));
                continue;
            }
        }
        let mut open = BTreeSet::new();
        for qualifier in [None, Some("live")] {
            match policy(clients, target, &name, qualifier).await {
                Ok(Some(text)) => {
                    let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    for (sid, why) in open_statements(&doc) {
                        open.insert(match why {
                            Open::Public => format!("{sid} lets anyone invoke"),
                            Open::AnyAccountOf(service) => {
                                format!(
                                    "{sid} lets {service} of any account invoke (no SourceArn/SourceAccount)"
                                )
                            }
                        });
                    }
                }
                Ok(None) => {}
                Err(e) if qualifier.is_some() && e.code.as_deref() == Some("ResourceNotFoundException") => {}
                Err(e) => {
                    open.insert(cannot(&e));
                }
            }
        }
        if open.is_empty() {
            findings.push((
                true,
                format!("{name}: no policy statement (function or live alias) opens it"),
            ));
        } else {
            findings.push((
                false,
                format!("{name}: {}", open.into_iter().collect::<Vec<_>>().join("; ")),
            ));
        }
    }
    control(
        "function-not-public",
        "No function can be invoked by anyone",
        None,
        findings,
    )
}
