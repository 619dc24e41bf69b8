//! OAuth resources on moto: KMS signing keys and the jti table (as template.yaml declares it).

use super::Aws;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_kms::types::{KeySpec, KeyUsageType};

impl Aws {
    /// A KMS asymmetric key for signing (`KeyUsage` `SIGN_VERIFY`) of `spec`; returns its ARN.
    pub async fn signing_key(&self, spec: KeySpec) -> String {
        self.kms
            .create_key()
            .key_usage(KeyUsageType::SignVerify)
            .key_spec(spec)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .arn()
            .unwrap()
            .to_owned()
    }
}

/// A DynamoDB client on moto (moto's default account, the environment's fake credentials).
pub async fn dynamodb(url: &str) -> aws_sdk_dynamodb::Client {
    authserver_aws::dynamodb_client(&authserver_aws::sdk_config(Some(url)).await)
}

/// A fresh jti table: partition key `jti` (string), TTL on `exp`; returns its name.
pub async fn jti_table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = format!("jti-{}", super::unique());
    let jti = authserver_aws::oauth::jti::KEY;
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(jti)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(jti)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(authserver_aws::oauth::jti::TTL)
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    name
}
