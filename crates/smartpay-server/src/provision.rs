//! Merchant provisioning, shared by the operator CLI and the sandbox's first start.

use smartpay_domain::Millis;
use smartpay_store::{CredentialKind, Merchant, MerchantStatus, Store};

use crate::auth::{IssuedCredential, add_credential};
use crate::secrets::ServerKeys;

/// A new merchant with one Basic key and one OAuth client; secrets are shown once.
pub struct ProvisionedMerchant {
    pub merchant: Merchant,
    pub basic: IssuedCredential,
    pub oauth: IssuedCredential,
}

impl ProvisionedMerchant {
    /// The one-time credentials as JSON: merchantKey, authenticationKey, clientId, clientSecret.
    pub fn credentials_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.merchant.name,
            "merchantKey": self.merchant.id,
            "authenticationKey": self.basic.secret.as_str(),
            "clientId": self.oauth.credential.client_id,
            "clientSecret": self.oauth.secret.as_str(),
            "basicCredentialId": self.basic.credential.id,
            "oauthCredentialId": self.oauth.credential.id,
        })
    }
}

/// Creates a merchant, its Basic key and its OAuth client.
pub async fn create_merchant(
    store: &dyn Store,
    secrets: &ServerKeys,
    name: &str,
) -> anyhow::Result<ProvisionedMerchant> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        anyhow::bail!("--name must be 1 to 100 characters without control characters");
    }
    let merchant = Merchant {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        status: MerchantStatus::Active,
        capture_mode: smartpay_domain::modification::CaptureMode::Auto,
        capture_delay_seconds: None,
        auto_cancel_seconds: None,
        identity_jwks: None,
        created_at: Millis::now(),
    };
    store.create_merchant(merchant.clone()).await?;
    let basic = add_credential(store, secrets, &merchant.id, CredentialKind::Basic, "default").await?;
    let oauth = add_credential(store, secrets, &merchant.id, CredentialKind::OAuth, "default").await?;
    Ok(ProvisionedMerchant { merchant, basic, oauth })
}

/// On a sandbox's first start (no merchant yet), creates the sandbox merchant.
pub async fn bootstrap_sandbox(store: &dyn Store, secrets: &ServerKeys) -> anyhow::Result<Option<ProvisionedMerchant>> {
    if !store.merchants().await?.is_empty() {
        return Ok(None);
    }
    Ok(Some(create_merchant(store, secrets, "Sandbox merchant").await?))
}
