//! Settings: `config/*.toml` with environment overrides.
//!
//! Any key can be overridden as `BOXOFFICE_<SECTION>_<KEY>` (e.g.
//! `BOXOFFICE_HTTP_LISTEN`, `BOXOFFICE_RATE_LIMIT_ENABLED`); top-level keys as
//! `BOXOFFICE_<KEY>` (`BOXOFFICE_DATA_DIR`); `BOXOFFICE_LISTEN` is short for the HTTP
//! listen address.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration in {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) http: HttpSettings,
    pub(crate) auth: AuthSettings,
    pub(crate) rate_limit: RateLimitSettings,
    pub(crate) engine: EngineSettings,
    pub(crate) log: LogSettings,
    pub(crate) kafka: KafkaSettings,
    pub(crate) snapshot: SnapshotSettings,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct HttpSettings {
    pub(crate) listen: String,
    pub(crate) body_bytes_max: usize,
    pub(crate) outcome_timeout_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct AuthSettings {
    pub(crate) operator_key: String,
    pub(crate) user_token_secret: String,
    pub(crate) tenants: Vec<TenantSettings>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct TenantSettings {
    pub(crate) id: String,
    pub(crate) admin_key: String,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct RateLimitSettings {
    pub(crate) enabled: bool,
    pub(crate) per_user_per_second: u32,
    pub(crate) per_user_burst: u32,
    pub(crate) per_address_per_second: u32,
    pub(crate) per_address_burst: u32,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct EngineSettings {
    pub(crate) ticket_secret: String,
    pub(crate) confirm_grace_ms: u64,
    pub(crate) waitlist_length_max: u32,
    pub(crate) waitlist_wait_max_ms: u64,
    pub(crate) seats_per_order_cap: u32,
    pub(crate) tick_interval_ms: u64,
    /// This replica's name, as `boxoffice promote --node` names it. Replicas that share a
    /// log need distinct names.
    #[serde(default = "default_node")]
    pub(crate) node: String,
    /// Where `boxoffice engine` serves its operator endpoints (status, promote, metrics).
    #[serde(default = "default_operator_listen")]
    pub(crate) operator_listen: String,
    /// Automatic fail-over, off at 0: a standby promotes itself once requests it has
    /// applied have gone unanswered (the outcomes log not growing) for this long.
    #[serde(default)]
    pub(crate) auto_promote_after_ms: u64,
    /// How long a repeated Idempotency-Key returns the first answer (the contract's 24 h;
    /// the ingress's index keeps keys this long).
    #[serde(default = "default_idempotency_window_ms")]
    pub(crate) idempotency_window_ms: u64,
    /// How long the engine itself remembers a key: the retries that reach the log before
    /// the ingress has indexed the first answer.
    #[serde(default = "default_idempotency_engine_window_ms")]
    pub(crate) idempotency_engine_window_ms: u64,
}

fn default_idempotency_window_ms() -> u64 {
    engine::EngineConfig::default().idempotency_window_ms
}

fn default_idempotency_engine_window_ms() -> u64 {
    engine::EngineConfig::default().idempotency_engine_window_ms
}

fn default_node() -> String {
    "engine-1".to_string()
}

fn default_operator_listen() -> String {
    "127.0.0.1:8081".to_string()
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogKind {
    Embedded,
    Kafka,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct LogSettings {
    pub(crate) kind: LogKind,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct KafkaSettings {
    pub(crate) brokers: String,
    pub(crate) requests_topic: String,
    pub(crate) outcomes_topic: String,
    pub(crate) transactional_id: String,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct SnapshotSettings {
    pub(crate) every_records: u64,
    pub(crate) every_ms: u64,
    pub(crate) keep: usize,
}

/// The development defaults that must never protect real data.
pub(crate) const DEFAULT_SECRETS: [&str; 4] = [
    "demo-operator-key",
    "demo-user-secret",
    "demo-admin-key",
    "demo-ticket-secret",
];

impl Settings {
    pub(crate) fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, std::env::vars(), path)
    }

    pub(crate) fn parse(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        path: &Path,
    ) -> Result<Settings, SettingsError> {
        let invalid = |message: String| SettingsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut root: toml::Table = text
            .parse()
            .map_err(|error: toml::de::Error| invalid(error.to_string()))?;
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with("BOXOFFICE_"))
            .collect();
        overrides.sort();
        for (name, value) in overrides {
            let key = name["BOXOFFICE_".len()..].to_ascii_lowercase();
            let key = if key == "listen" {
                "http_listen".to_string()
            } else {
                key
            };
            apply_override(&mut root, &key, &value);
        }
        toml::Value::Table(root)
            .try_into()
            .map_err(|error: toml::de::Error| invalid(error.to_string()))
    }

    /// Which development default secrets are in use (for the start-up warning).
    pub(crate) fn default_secrets_in_use(&self) -> Vec<&'static str> {
        let mut used = Vec::new();
        if self.auth.operator_key == DEFAULT_SECRETS[0] {
            used.push("auth.operator_key");
        }
        if self.auth.user_token_secret == DEFAULT_SECRETS[1] {
            used.push("auth.user_token_secret");
        }
        if self
            .auth
            .tenants
            .iter()
            .any(|tenant| tenant.admin_key == DEFAULT_SECRETS[2])
        {
            used.push("auth.tenants.admin_key");
        }
        if self.engine.ticket_secret == DEFAULT_SECRETS[3] {
            used.push("engine.ticket_secret");
        }
        used
    }

    pub(crate) fn engine_config(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            ticket_secret: self.engine.ticket_secret.as_bytes().to_vec(),
            confirm_grace_ms: self.engine.confirm_grace_ms,
            waitlist_length_max: self.engine.waitlist_length_max,
            waitlist_wait_max_ms: self.engine.waitlist_wait_max_ms,
            seats_per_order_cap: self.engine.seats_per_order_cap,
            idempotency_window_ms: self.engine.idempotency_window_ms,
            idempotency_engine_window_ms: self.engine.idempotency_engine_window_ms,
            ..engine::EngineConfig::default()
        }
    }
}

/// `section_key` → `[section] key` when the section exists (longest section name
/// first, so `rate_limit_enabled` finds `rate_limit`); otherwise a top-level key.
fn apply_override(root: &mut toml::Table, key: &str, value: &str) {
    let mut sections: Vec<String> = root
        .iter()
        .filter(|(_, value)| value.is_table())
        .map(|(name, _)| name.clone())
        .collect();
    sections.sort_by_key(|name| std::cmp::Reverse(name.len()));
    let parsed = parse_value(value);
    for section in sections {
        if let Some(field) = key.strip_prefix(&format!("{section}_")) {
            if let Some(toml::Value::Table(table)) = root.get_mut(&section) {
                table.insert(field.to_string(), parsed);
            }
            return;
        }
    }
    if root.contains_key(key) {
        root.insert(key.to_string(), parsed);
    }
}

fn parse_value(value: &str) -> toml::Value {
    if let Ok(flag) = value.parse::<bool>() {
        return toml::Value::Boolean(flag);
    }
    if let Ok(number) = value.parse::<i64>() {
        return toml::Value::Integer(number);
    }
    toml::Value::String(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("../../config/default.toml");

    #[test]
    fn defaults_parse_and_environment_overrides_them() {
        let path = Path::new("config/default.toml");
        let settings = Settings::parse(DEFAULT, [], path).unwrap();
        assert_eq!(settings.http.listen, "127.0.0.1:8080");
        assert_eq!(settings.default_secrets_in_use().len(), 4);
        let env = [
            ("BOXOFFICE_LISTEN".to_string(), "127.0.0.1:9999".to_string()),
            ("BOXOFFICE_DATA_DIR".to_string(), "/tmp/x".to_string()),
            (
                "BOXOFFICE_RATE_LIMIT_ENABLED".to_string(),
                "false".to_string(),
            ),
            ("BOXOFFICE_LOG_KIND".to_string(), "kafka".to_string()),
        ];
        let settings = Settings::parse(DEFAULT, env, path).unwrap();
        assert_eq!(settings.http.listen, "127.0.0.1:9999");
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/x"));
        assert!(!settings.rate_limit.enabled);
        assert_eq!(settings.log.kind, LogKind::Kafka);
        let defaults = engine::EngineConfig::default();
        assert_eq!(
            (
                settings.engine_config().idempotency_window_ms,
                settings.engine_config().idempotency_engine_window_ms
            ),
            (
                defaults.idempotency_window_ms,
                defaults.idempotency_engine_window_ms
            ),
            "the file's idempotency windows are the engine's defaults"
        );
    }

    #[test]
    fn a_bad_value_is_a_clear_error() {
        let env = [("BOXOFFICE_LOG_KIND".to_string(), "floppy".to_string())];
        let error = Settings::parse(DEFAULT, env, Path::new("x.toml")).unwrap_err();
        assert!(
            error.to_string().contains("floppy") || error.to_string().contains("variant"),
            "{error}"
        );
    }
}
