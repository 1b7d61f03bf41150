//! The payment credential vault (CONTRACT §8): key material, stored payment options, and key
//! rotation. Card numbers and provider tokens are sealed here (envelope encryption,
//! `smartpay-vault`) before they reach the store and opened only here: the clear number leaves
//! this module only toward the provider's tokenization when a card is stored; later payments
//! use the provider's token.
//!
//! When the key material is missing or wrong the vault is *unavailable*: its routes answer 503
//! and the rest of the API keeps serving.

use smartpay_domain::Millis;
use smartpay_domain::card::{CardNumber, Expiry};
use smartpay_store::{AddOption, Reseal, RotationKind, Store, StoredOption, VaultKey};
use smartpay_vault::{Field, FingerprintKey, Kek, KekSource, KeyRing, RecordAad, Sealed};
use zeroize::Zeroizing;

use crate::config::{Config, Mode};
use crate::secrets::ServerKeys;

/// The AAD of the check value that proves a key is the one a version id names.
const CHECK: &str = "vault-key-check";

/// Why the vault cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultUnavailable {
    #[error(
        "no vault key material is configured (production mode needs vault_kek_file, SMARTPAY_VAULT_KEK or vault_kek_components)"
    )]
    NoKey,
    #[error("the vault key could not be loaded: {0}")]
    BadKey(String),
    #[error("vault key version {0} was retired by a completed rotation and is refused")]
    Retired(String),
    #[error("vault key version {0} does not open its check value: wrong key")]
    WrongKey(String),
    #[error("stored payment options are sealed under key version(s) {0} which were not given")]
    MissingKey(String),
}

/// The vault's keys, or why it has none.
pub struct Vault {
    keys: Result<Keys, VaultUnavailable>,
}

struct Keys {
    ring: KeyRing,
    fingerprint: FingerprintKey,
}

/// Where the KEK comes from, by the configuration; `None` when nothing is configured.
pub fn kek_source(config: &Config) -> Option<KekSource> {
    if let [a, b] = config.vault_kek_components.as_slice() {
        return Some(KekSource::Components(a.clone(), b.clone()));
    }
    if let Some(v) = &config.vault_kek {
        return Some(KekSource::Env(v.0.clone()));
    }
    config.vault_kek_file.clone().map(KekSource::File)
}

/// The sandbox's own key file, created on first use.
fn sandbox_key_file(config: &Config) -> Result<KekSource, VaultUnavailable> {
    let path = config.data_dir.join("vault.kek");
    if !path.exists() {
        let key = smartpay_vault::generate_key().map_err(|e| VaultUnavailable::BadKey(e.to_string()))?;
        smartpay_vault::write_key_file(&path, &key).map_err(|e| VaultUnavailable::BadKey(e.to_string()))?;
    }
    Ok(KekSource::File(path))
}

/// The configured key ring (current key, and the previous one during a KEK rotation).
pub fn load_ring(config: &Config, server_keys: &ServerKeys) -> Result<KeyRing, VaultUnavailable> {
    let source = match kek_source(config) {
        Some(s) => s,
        // Several nodes share a PostgreSQL store: a key derived from the master key they share.
        None if config.mode == Mode::Sandbox && config.database_url.is_some() => {
            let key = server_keys.sandbox_vault_kek();
            KekSource::Env(Zeroizing::new(key.iter().map(|b| format!("{b:02x}")).collect()))
        }
        None if config.mode == Mode::Sandbox => sandbox_key_file(config)?,
        None => return Err(VaultUnavailable::NoKey),
    };
    let current = smartpay_vault::load_kek(&source).map_err(|e| VaultUnavailable::BadKey(e.to_string()))?;
    match &config.vault_previous_kek_file {
        Some(p) => {
            let previous = smartpay_vault::load_kek(&KekSource::File(p.clone()))
                .map_err(|e| VaultUnavailable::BadKey(format!("vault_previous_kek_file: {e}")))?;
            Ok(KeyRing::rotating(current, previous))
        }
        None => Ok(KeyRing::new(current)),
    }
}

fn check_aad(kek_id: &str) -> RecordAad {
    RecordAad::new(CHECK, CHECK, kek_id, Field::CardNumber)
}

/// Checks `ring` against the key versions the store knows, registering the current key when it
/// is new and nothing sealed under another key would be left unreadable. A previous key that a
/// finished rotation retired is dropped from the ring (with a warning); a retired current key is
/// refused.
pub async fn check_ring(store: &dyn Store, ring: KeyRing, now: Millis) -> Result<KeyRing, VaultUnavailable> {
    let unavailable =
        |e: smartpay_store::StoreError| VaultUnavailable::BadKey(format!("reading the vault's keys: {e}"));
    let known = store.vault_keys().await.map_err(unavailable)?;
    let retired = |id: &str| known.iter().any(|k| k.kek_id == id && k.retired);
    let ring = match ring.previous {
        Some(previous) if retired(previous.id()) => {
            tracing::warn!(
                key_version = previous.id(),
                "vault_previous_kek_file names a retired key: ignored (remove it)"
            );
            KeyRing::new(ring.current)
        }
        _ => ring,
    };
    for kek in ring_keys(&ring) {
        if let Some(k) = known.iter().find(|k| k.kek_id == kek.id()) {
            if k.retired {
                return Err(VaultUnavailable::Retired(k.kek_id.clone()));
            }
            let sealed =
                Sealed::from_bytes(&k.check_sealed).map_err(|_| VaultUnavailable::WrongKey(k.kek_id.clone()))?;
            smartpay_vault::open(&ring, &check_aad(&k.kek_id), &sealed)
                .map_err(|_| VaultUnavailable::WrongKey(k.kek_id.clone()))?;
        }
    }
    let in_ring: Vec<String> = ring_keys(&ring).iter().map(|k| k.id().to_owned()).collect();
    let per_key = store.options_per_key().await.map_err(unavailable)?;
    let missing: Vec<String> = per_key.into_iter().map(|(k, _)| k).filter(|k| !in_ring.contains(k)).collect();
    if !missing.is_empty() {
        return Err(VaultUnavailable::MissingKey(missing.join(", ")));
    }
    for kek in ring_keys(&ring) {
        if !known.iter().any(|k| k.kek_id == kek.id()) {
            let check = smartpay_vault::seal(kek, &check_aad(kek.id()), CHECK.as_bytes())
                .map_err(|e| VaultUnavailable::BadKey(e.to_string()))?;
            let key = VaultKey {
                kek_id: kek.id().to_owned(),
                check_sealed: check.to_bytes(),
                retired: false,
                created_at: now,
            };
            store.add_vault_key(key).await.map_err(unavailable)?;
        }
    }
    Ok(ring)
}

fn ring_keys(ring: &KeyRing) -> Vec<&Kek> {
    let mut keys = vec![&ring.current];
    if let Some(p) = ring.previous.as_ref() {
        keys.push(p);
    }
    keys
}

impl Vault {
    /// Loads and checks the vault's keys; an unavailable vault is logged, not fatal.
    pub async fn open(config: &Config, store: &dyn Store, server_keys: &ServerKeys, now: Millis) -> Vault {
        let keys = async {
            let ring = check_ring(store, load_ring(config, server_keys)?, now).await?;
            let fingerprint = FingerprintKey::from_bytes(&server_keys.vault_fingerprint_key())
                .map_err(|e| VaultUnavailable::BadKey(e.to_string()))?;
            Ok(Keys { ring, fingerprint })
        }
        .await;
        match &keys {
            Ok(k) => tracing::info!(key_version = k.ring.current.id(), "vault ready"),
            Err(e) => tracing::error!(error = %e, "vault unavailable: its routes answer 503"),
        }
        Vault { keys }
    }

    /// A vault that is unavailable for `why` (tests).
    pub fn unavailable(why: VaultUnavailable) -> Vault {
        Vault { keys: Err(why) }
    }

    fn keys(&self) -> Result<&Keys, VaultUnavailable> {
        self.keys.as_ref().map_err(Clone::clone)
    }

    /// Whether the vault can serve.
    pub fn status(&self) -> Result<(), VaultUnavailable> {
        self.keys().map(|_| ())
    }

    /// A new option, sealed: the number and the provider's token under fresh data keys, bound
    /// to the option's row. `reference` is the new storedPaymentOptionReference.
    #[allow(clippy::too_many_arguments)]
    pub fn seal_option(
        &self,
        merchant_id: &str,
        account_id: &str,
        reference: &str,
        number: &CardNumber,
        code: &str,
        expiry: Expiry,
        token: &str,
        provider: &str,
        now: Millis,
    ) -> Result<StoredOption, VaultUnavailable> {
        let keys = self.keys()?;
        let kek = &keys.ring.current;
        let seal = |field: Field, text: &[u8]| {
            smartpay_vault::seal(kek, &RecordAad::new(merchant_id, account_id, reference, field), text)
                .map(|s| s.to_bytes())
                .map_err(|e| VaultUnavailable::BadKey(e.to_string()))
        };
        Ok(StoredOption {
            reference: reference.to_owned(),
            merchant_id: merchant_id.to_owned(),
            account_id: account_id.to_owned(),
            code: code.to_owned(),
            masked: smartpay_vault::masked(number),
            expiry_month: expiry.month,
            expiry_year: expiry.year,
            fingerprint: smartpay_vault::fingerprint(&keys.fingerprint, number).to_vec(),
            kek_id: kek.id().to_owned(),
            pan_sealed: seal(Field::CardNumber, number.expose().as_bytes())?,
            token_sealed: seal(Field::ProviderToken, token.as_bytes())?,
            provider: provider.to_owned(),
            is_default: false,
            created_at: now,
        })
    }

    /// The provider's token of a stored option (to pay with it).
    pub fn open_token(&self, o: &StoredOption) -> Result<Zeroizing<String>, VaultUnavailable> {
        self.open_field(o, Field::ProviderToken, &o.token_sealed)
    }

    /// The card number of a stored option: only for key rotation and its checks.
    pub fn open_number(&self, o: &StoredOption) -> Result<Zeroizing<String>, VaultUnavailable> {
        self.open_field(o, Field::CardNumber, &o.pan_sealed)
    }

    fn open_field(&self, o: &StoredOption, field: Field, blob: &[u8]) -> Result<Zeroizing<String>, VaultUnavailable> {
        let keys = self.keys()?;
        let aad = RecordAad::new(&o.merchant_id, &o.account_id, &o.reference, field);
        let sealed = Sealed::from_bytes(blob).map_err(|e| VaultUnavailable::BadKey(e.to_string()))?;
        let clear =
            smartpay_vault::open(&keys.ring, &aad, &sealed).map_err(|e| VaultUnavailable::BadKey(e.to_string()))?;
        String::from_utf8(clear.to_vec()).map(Zeroizing::new).map_err(|_| VaultUnavailable::BadKey("not text".into()))
    }
}

/// A new storedPaymentOptionReference: 32 random hex digits.
pub fn new_reference() -> Result<String, crate::secrets::SecretError> {
    let b = crate::secrets::random_array::<16>()?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Stores `option`; the reference of the card when the account already holds it.
pub async fn add(store: &dyn Store, option: StoredOption) -> Result<Option<String>, smartpay_store::StoreError> {
    let reference = option.reference.clone();
    match store.add_payment_option(option).await? {
        AddOption::Added => Ok(Some(reference)),
        AddOption::Duplicate(existing) => Ok(Some(existing)),
        AddOption::NoAccount => Ok(None),
    }
}

/// Reports rotation progress (the CLI draws a bar with it).
pub trait Progress {
    fn advance(&mut self, done: u64, total: u64);
}

/// Options re-sealed per store transaction during a rotation.
const ROTATION_BATCH: u32 = 100;

/// Runs (or resumes) a key rotation to completion. KEK: every option under the previous key is
/// re-wrapped under the current key (its data keys re-wrapped; ciphertexts unchanged); the
/// previous version is then retired, and refused from then on. DEK: every option gets new data
/// keys and new ciphertexts under the current KEK. Each batch and the cursor are one transaction,
/// so a crash loses nothing: running it again resumes.
pub async fn rotate(
    store: &dyn Store,
    ring: &KeyRing,
    kind: RotationKind,
    now: impl Fn() -> Millis,
    failpoint: impl Fn(&str),
    progress: &mut dyn Progress,
) -> anyhow::Result<u64> {
    let current = &ring.current;
    let rotation = match store.open_rotation().await? {
        Some(open) if open.kind == kind && open.to_kek == current.id() => open,
        Some(open) => anyhow::bail!(
            "an unfinished {} rotation from {} to {} must be resumed first (with that key configured)",
            open.kind.as_str(),
            open.from_kek,
            open.to_kek
        ),
        None => {
            let from = match kind {
                RotationKind::Kek => ring
                    .previous
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("a KEK rotation needs the previous key: vault_previous_kek_file"))?
                    .id()
                    .to_owned(),
                RotationKind::Dek => current.id().to_owned(),
            };
            if kind == RotationKind::Kek && from == current.id() {
                anyhow::bail!("the new key is the previous key");
            }
            store.start_rotation(kind, &from, current.id(), now()).await?
        }
    };
    let filter = match kind {
        RotationKind::Kek => Some(rotation.from_kek.clone()),
        RotationKind::Dek => None,
    };
    let total = store.options_per_key().await?.iter().map(|(_, n)| n).sum::<u64>();
    let mut done = rotation.done;
    let mut cursor = rotation.cursor.clone();
    let mut batch_no = 0u64;
    let mut passes = 0;
    loop {
        let batch = store.options_after(filter.as_deref(), &cursor, ROTATION_BATCH).await?;
        let Some(last) = batch.last().map(|o| o.reference.clone()) else {
            // References are random: an option sealed under the previous key by a node not yet
            // restarted with the new one can sort before the cursor. Retiring the previous key
            // with such an option left would make it unreadable: look again from the start.
            let left = kind == RotationKind::Kek && !store.options_after(filter.as_deref(), "", 1).await?.is_empty();
            passes += 1;
            if left && passes < 3 {
                cursor = String::new();
                continue;
            }
            if left {
                anyhow::bail!(
                    "options are still being sealed under key version {} (is every node configured with the new \
                     key?); run the rotation again once they are",
                    rotation.from_kek
                );
            }
            break;
        };
        let mut steps = Vec::with_capacity(batch.len());
        for o in &batch {
            let step = |field: Field, blob: &[u8]| -> anyhow::Result<Vec<u8>> {
                let aad = RecordAad::new(&o.merchant_id, &o.account_id, &o.reference, field);
                let sealed = Sealed::from_bytes(blob)?;
                let next = match kind {
                    RotationKind::Kek => smartpay_vault::rewrap(ring, &aad, &sealed, current)?,
                    RotationKind::Dek => smartpay_vault::reencrypt(ring, &aad, &sealed, current)?,
                };
                Ok(next.to_bytes())
            };
            steps.push(Reseal {
                reference: o.reference.clone(),
                expected_pan_sealed: o.pan_sealed.clone(),
                kek_id: current.id().to_owned(),
                pan_sealed: step(Field::CardNumber, &o.pan_sealed)?,
                token_sealed: step(Field::ProviderToken, &o.token_sealed)?,
            });
        }
        done += store.reseal_options(rotation.id, steps, last.clone()).await?;
        cursor = last;
        batch_no += 1;
        failpoint(&format!("rotation.batch.{batch_no}"));
        progress.advance(done, total);
    }
    failpoint("rotation.before_finish");
    store.finish_rotation(rotation.id, now()).await?;
    if kind == RotationKind::Kek {
        failpoint("rotation.before_retire");
        store.retire_vault_key(&rotation.from_kek, now()).await?;
    }
    Ok(done)
}

/// What checking every stored option found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    /// (reference, why) of options whose number or token did not open.
    pub failures: Vec<(String, String)>,
    /// Options per key version.
    pub per_key: Vec<(String, u64)>,
}

/// Opens every stored option's number and token with `ring` (an operator's check after a
/// rotation or a restore). Nothing is printed or returned but the outcome.
pub async fn verify_all(store: &dyn Store, ring: &KeyRing) -> anyhow::Result<VerifyReport> {
    let mut report = VerifyReport { per_key: store.options_per_key().await?, ..Default::default() };
    let mut cursor = String::new();
    loop {
        let batch = store.options_after(None, &cursor, 500).await?;
        let Some(last) = batch.last().map(|o| o.reference.clone()) else { break };
        for o in &batch {
            report.checked += 1;
            for (field, blob) in [(Field::CardNumber, &o.pan_sealed), (Field::ProviderToken, &o.token_sealed)] {
                let aad = RecordAad::new(&o.merchant_id, &o.account_id, &o.reference, field);
                let opened = Sealed::from_bytes(blob).and_then(|s| smartpay_vault::open(ring, &aad, &s));
                if let Err(e) = opened {
                    report.failures.push((o.reference.clone(), format!("{}: {e}", field.label())));
                }
            }
        }
        cursor = last;
    }
    Ok(report)
}
