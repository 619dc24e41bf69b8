//! Resources in one moto account: secrets, KMS keys, Lambda functions and their permissions,
//! a rotation started as Secrets Manager starts it, alarms and log groups.

use super::{Aws, lambda_without_docker, raw, unique};

impl Aws {
    /// A secret with `value`, encrypted with `kms_key` when given; returns its ARN.
    pub async fn secret(&self, name: &str, value: &str, kms_key: Option<&str>) -> String {
        let out = self
            .sm
            .create_secret()
            .name(name)
            .secret_string(value)
            .set_kms_key_id(kms_key.map(str::to_owned))
            .send()
            .await
            .unwrap();
        out.arn().unwrap().to_owned()
    }

    /// A customer-managed KMS key, rotation on or off; returns its key id.
    pub async fn key(&self, rotation: bool) -> String {
        let id = self
            .kms
            .create_key()
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .key_id()
            .to_owned();
        if rotation {
            self.kms.enable_key_rotation().key_id(&id).send().await.unwrap();
        }
        id
    }

    /// A Lambda function `name` (configuration only: moto does not run it), X-Ray tracing
    /// `Active` or `PassThrough`, with a `live` alias; returns its ARN.
    pub async fn function(&self, name: &str, active_tracing: bool) -> String {
        use aws_sdk_lambda::primitives::Blob;
        use aws_sdk_lambda::types::{FunctionCode, Runtime, TracingConfig, TracingMode};
        lambda_without_docker(&self.url).await;
        let role = self.role().await;
        // An empty zip archive: moto keeps the code, nothing runs it.
        let empty_zip = [b"PK\x05\x06".as_slice(), &[0u8; 18]].concat();
        let out = self
            .lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(format!("arn:aws:iam::{}:role/{role}", self.account.id))
            .code(FunctionCode::builder().zip_file(Blob::new(empty_zip)).build())
            .tracing_config(
                TracingConfig::builder()
                    .mode(if active_tracing {
                        TracingMode::Active
                    } else {
                        TracingMode::PassThrough
                    })
                    .build(),
            )
            .send()
            .await
            .unwrap();
        self.publish_live(name).await;
        out.function_arn().unwrap().to_owned()
    }

    /// An IAM role for a function (moto checks only that it exists); returns its name.
    async fn role(&self) -> String {
        let role = format!("fn-{}", unique());
        let params = [
            ("Action", "CreateRole"),
            ("RoleName", role.as_str()),
            (
                "AssumeRolePolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[]}"#,
            ),
            ("Version", "2010-05-08"),
        ];
        raw(&self.url, &self.account.id, "iam", &params).await;
        role
    }

    /// Publishes a version of function `name` and points its `live` alias at it.
    async fn publish_live(&self, name: &str) {
        let version = self
            .lambda
            .publish_version()
            .function_name(name)
            .send()
            .await
            .unwrap();
        self.lambda
            .create_alias()
            .function_name(name)
            .name("live")
            .function_version(version.version().unwrap())
            .send()
            .await
            .unwrap();
    }

    /// `lambda:InvokeFunction` for `principal` on `function` (`qualifier`), narrowed by
    /// `source_arn` when given.
    pub async fn permission(
        &self,
        function: &str,
        qualifier: Option<&str>,
        sid: &str,
        principal: &str,
        source_arn: Option<&str>,
    ) {
        self.lambda
            .add_permission()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_owned))
            .statement_id(sid)
            .action("lambda:InvokeFunction")
            .principal(principal)
            .set_source_arn(source_arn.map(str::to_owned))
            .send()
            .await
            .unwrap();
    }

    /// Starts a rotation of `secret` as Secrets Manager does: `RotateSecret` with `function` as
    /// the rotation function (enabling rotation every `days` days) stages an empty `AWSPENDING`
    /// version whose id is the token the four steps then get. (moto "invokes" the function
    /// without running anything.) Returns the token.
    pub async fn start_rotation(&self, secret: &str, function_arn: &str, days: i64) -> String {
        use aws_sdk_secretsmanager::types::RotationRulesType;
        let out = self
            .sm
            .rotate_secret()
            .secret_id(secret)
            .rotation_lambda_arn(function_arn)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(days)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.version_id().unwrap().to_owned()
    }

    /// A metric alarm named `name` on `namespace`/`metric`, with `actions` (SNS topic ARNs).
    pub async fn metric_alarm(&self, name: &str, namespace: &str, metric: &str, actions: &[&str]) {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Statistic};
        let mut request = self
            .cw
            .put_metric_alarm()
            .alarm_name(name)
            .namespace(namespace)
            .metric_name(metric)
            .statistic(Statistic::Maximum)
            .period(300)
            .evaluation_periods(1)
            .threshold(0.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold);
        for a in actions {
            request = request.alarm_actions(*a);
        }
        request.send().await.unwrap();
    }

    /// A log group with `retention` days (none: never expires) and `kms_key` (an ARN).
    pub async fn log_group(&self, name: &str, retention: Option<i32>, kms_key: Option<&str>) {
        self.logs
            .create_log_group()
            .log_group_name(name)
            .set_kms_key_id(kms_key.map(str::to_owned))
            .send()
            .await
            .unwrap();
        if let Some(days) = retention {
            self.logs
                .put_retention_policy()
                .log_group_name(name)
                .retention_in_days(days)
                .send()
                .await
                .unwrap();
        }
    }

    /// The labels of every version of `secret`.
    pub async fn stages(&self, secret: &str) -> std::collections::HashMap<String, Vec<String>> {
        self.sm
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .unwrap()
            .version_ids_to_stages()
            .cloned()
            .unwrap_or_default()
    }

    /// The value staged `stage` of `secret`.
    pub async fn value(&self, secret: &str, stage: &str) -> String {
        self.sm
            .get_secret_value()
            .secret_id(secret)
            .version_stage(stage)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_owned()
    }
}
