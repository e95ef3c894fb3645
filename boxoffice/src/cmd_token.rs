//! `boxoffice token --user <id>`: prints a user token (HS256 JWT, `sub` = the user id)
//! signed with the configured user-token secret, as a frontend would mint after its own
//! login. For tests and demos.

use crate::cmd_engine::ToolError;
use crate::settings::Settings;

pub(crate) fn run(settings: &Settings, user: &str, ttl_seconds: u64) -> Result<(), ToolError> {
    if user.trim().is_empty() || user.len() > ingress::USER_ID_BYTES_MAX {
        return Err(ToolError::Invalid(format!(
            "--user must be 1 to {} bytes",
            ingress::USER_ID_BYTES_MAX
        )));
    }
    if ttl_seconds == 0 {
        return Err(ToolError::Invalid("--ttl-seconds must be positive".into()));
    }
    println!(
        "{}",
        ingress::mint_user_token(&settings.auth.user_token_secret, user, ttl_seconds)
    );
    Ok(())
}
