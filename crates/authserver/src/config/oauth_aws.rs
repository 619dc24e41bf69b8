//! `[oauth_aws]`: where the OAuth issuer's signing keys and token-id store live on AWS.
//!
//! A section of its own (not inside `[oauth]`) so that every key keeps the one-variable rule
//! (`AUTHSERVER_OAUTH_AWS_SIGNER`, ...). The issuer proper (`[oauth]`: issuer URL, lifetimes,
//! local keys) is another section; this one only chooses and locates the AWS adapters, and
//! [`OAuthAwsSettings::signer_choice`] hands `authserver_aws::oauth::build_signer` what to build.

use super::ConfigError;
use authserver_aws::oauth::{KmsKey, SignerChoice};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Which signer signs access tokens (`oauth_aws.signer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum OAuthSigner {
    /// The `[oauth]` section's local PEM key set (the standalone server's).
    Local,
    /// KMS asymmetric keys (`oauth_aws.kms_keys`).
    Kms,
    /// A key set in a Secrets Manager secret (`oauth_aws.key_secret_id`).
    SecretsManager,
    /// Verify-only (the Lambda authorizer with the `secrets_manager` signer): the public half
    /// of the key set, in its own secret (`oauth_aws.key_secret_id`); it never signs.
    SecretsManagerPublic,
}

impl TryFrom<String> for OAuthSigner {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.as_str() {
            "local" => Ok(Self::Local),
            "kms" => Ok(Self::Kms),
            "secrets_manager" => Ok(Self::SecretsManager),
            "secrets_manager_public" => Ok(Self::SecretsManagerPublic),
            _ => Err("must be local, kms, secrets_manager or secrets_manager_public"),
        }
    }
}

impl From<OAuthSigner> for &'static str {
    fn from(s: OAuthSigner) -> Self {
        match s {
            OAuthSigner::Local => "local",
            OAuthSigner::Kms => "kms",
            OAuthSigner::SecretsManager => "secrets_manager",
            OAuthSigner::SecretsManagerPublic => "secrets_manager_public",
        }
    }
}

/// One entry of `oauth_aws.kms_keys`: `KEY_ARN` (signs from the start) or
/// `KEY_ARN@2027-01-01T00:00:00Z` (signs from then on; published before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KmsKeySetting(pub KmsKey);

impl TryFrom<String> for KmsKeySetting {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let (key_id, activates_at) = match text.rsplit_once('@') {
            None => (text.as_str(), 0),
            Some((id, at)) => {
                let at = OffsetDateTime::parse(at, &Rfc3339)
                    .map_err(|_| "the activation after @ must be an RFC 3339 time".to_owned())?;
                let at = u64::try_from(at.unix_timestamp())
                    .map_err(|_| "the activation must be after 1970".to_owned())?;
                (id, at)
            }
        };
        if key_id.is_empty() {
            return Err("empty key id".into());
        }
        Ok(Self(KmsKey {
            key_id: key_id.to_owned(),
            activates_at,
        }))
    }
}

impl From<KmsKeySetting> for String {
    fn from(s: KmsKeySetting) -> Self {
        let at = i64::try_from(s.0.activates_at).unwrap_or(i64::MAX);
        match OffsetDateTime::from_unix_timestamp(at).ok().filter(|_| at > 0) {
            Some(t) => format!("{}@{}", s.0.key_id, t.format(&Rfc3339).unwrap_or_default()),
            None => s.0.key_id,
        }
    }
}

/// `[oauth_aws]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthAwsSettings {
    /// Who signs access tokens.
    pub signer: OAuthSigner,
    /// KMS keys with activation times (signer `kms`).
    pub kms_keys: Vec<KmsKeySetting>,
    /// The Secrets Manager secret holding the key set (signer `secrets_manager`).
    pub key_secret_id: String,
    /// How often the key set secret is re-read (seconds).
    pub key_refresh_seconds: u64,
    /// How long a retired key stays in JWKS after its successor activated (seconds): at least
    /// the access-token lifetime plus a minute.
    pub retain_retired_seconds: u64,
    /// DynamoDB table of revoked and used token ids (empty: the `[oauth]` local store).
    pub jti_table: String,
}

impl Default for OAuthAwsSettings {
    fn default() -> Self {
        Self {
            signer: OAuthSigner::Local,
            kms_keys: Vec::new(),
            key_secret_id: String::new(),
            key_refresh_seconds: 300,
            // 15-minute tokens (the issuer's default lifetime) + 5 minutes.
            retain_retired_seconds: 1200,
            jti_table: String::new(),
        }
    }
}

impl OAuthAwsSettings {
    /// The chosen signer has what it needs; the intervals are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.signer {
            OAuthSigner::Kms if self.kms_keys.is_empty() => {
                return ConfigError::invalid("oauth_aws.kms_keys", "signer kms needs at least one key");
            }
            OAuthSigner::SecretsManager | OAuthSigner::SecretsManagerPublic
                if self.key_secret_id.is_empty() =>
            {
                return ConfigError::invalid(
                    "oauth_aws.key_secret_id",
                    "signer secrets_manager(_public) needs the key set secret",
                );
            }
            _ => {}
        }
        if !(60..=3600).contains(&self.key_refresh_seconds) {
            return ConfigError::invalid("oauth_aws.key_refresh_seconds", "must be 60 to 3600");
        }
        if self.retain_retired_seconds < 2 * authserver_aws::oauth::schedule::SWITCH_GRACE {
            return ConfigError::invalid(
                "oauth_aws.retain_retired_seconds",
                "must be at least 120 (the token lifetime plus a minute)",
            );
        }
        Ok(())
    }

    /// What `authserver_aws::oauth::build_signer` builds.
    pub fn signer_choice(&self) -> SignerChoice {
        match self.signer {
            OAuthSigner::Local => SignerChoice::Local,
            OAuthSigner::Kms => SignerChoice::Kms(self.kms_keys.iter().map(|k| k.0.clone()).collect()),
            OAuthSigner::SecretsManager => SignerChoice::SecretsManager {
                secret_id: self.key_secret_id.clone(),
                refresh: Duration::from_secs(self.key_refresh_seconds),
            },
            OAuthSigner::SecretsManagerPublic => SignerChoice::SecretsManagerPublic {
                secret_id: self.key_secret_id.clone(),
                refresh: Duration::from_secs(self.key_refresh_seconds),
            },
        }
    }

    /// How long retired keys stay published.
    pub fn retain_retired(&self) -> Duration {
        Duration::from_secs(self.retain_retired_seconds)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kms_keys_parse_with_and_without_activation() {
        let k = KmsKeySetting::try_from("arn:aws:kms:eu-west-1:1:key/a".to_owned()).unwrap();
        assert_eq!(k.0.activates_at, 0);
        let k =
            KmsKeySetting::try_from("arn:aws:kms:eu-west-1:1:key/b@2027-01-01T00:00:00Z".to_owned()).unwrap();
        assert_eq!(
            (k.0.key_id.as_str(), k.0.activates_at),
            ("arn:aws:kms:eu-west-1:1:key/b", 1_798_761_600)
        );
        assert_eq!(
            String::from(k.clone()),
            "arn:aws:kms:eu-west-1:1:key/b@2027-01-01T00:00:00Z"
        );
        assert!(KmsKeySetting::try_from("arn@tomorrow".to_owned()).is_err());
        assert!(KmsKeySetting::try_from("@2027-01-01T00:00:00Z".to_owned()).is_err());
    }

    #[test]
    fn each_signer_needs_its_key_source() {
        let mut s = OAuthAwsSettings::default();
        s.validate().unwrap();
        assert_eq!(s.signer_choice(), SignerChoice::Local);
        s.signer = OAuthSigner::Kms;
        assert!(s.validate().is_err());
        s.kms_keys = vec![KmsKeySetting::try_from("k".to_owned()).unwrap()];
        s.validate().unwrap();
        s.signer = OAuthSigner::SecretsManager;
        assert!(s.validate().is_err());
        s.key_secret_id = "oauth-keys".into();
        s.validate().unwrap();
        s.signer = OAuthSigner::try_from("secrets_manager_public".to_owned()).unwrap();
        assert!(matches!(
            s.signer_choice(),
            SignerChoice::SecretsManagerPublic { .. }
        ));
        s.key_secret_id.clear();
        assert!(
            s.validate().is_err(),
            "verify-only needs the public key set secret"
        );
        s.key_secret_id = "oauth-keys-public".into();
        s.validate().unwrap();
        s.retain_retired_seconds = 60;
        assert!(s.validate().is_err());
    }

    #[test]
    fn the_variables_set_the_section() {
        let env = [
            ("AUTHSERVER_OAUTH_AWS_SIGNER", "kms"),
            (
                "AUTHSERVER_OAUTH_AWS_KMS_KEYS",
                "arn:a,arn:b@2027-01-01T00:00:00Z",
            ),
            ("AUTHSERVER_OAUTH_AWS_JTI_TABLE", "authserver-jti"),
        ];
        let env = env.map(|(k, v)| (k.to_owned(), v.to_owned()));
        let s = crate::config::Settings::load_with_env(None, env).unwrap();
        assert!(s.env_warnings.is_empty(), "{:?}", s.env_warnings);
        let SignerChoice::Kms(keys) = s.oauth_aws.signer_choice() else {
            panic!("{:?}", s.oauth_aws)
        };
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (keys[1].key_id.as_str(), keys[1].activates_at),
            ("arn:b", 1_798_761_600)
        );
        assert_eq!(s.oauth_aws.jti_table, "authserver-jti");
        let bad = [("AUTHSERVER_OAUTH_AWS_SIGNER".to_owned(), "hsm".to_owned())];
        let err = crate::config::Settings::load_with_env(None, bad).unwrap_err();
        assert!(err.to_string().contains("oauth_aws.signer"), "{err}");
    }
}
