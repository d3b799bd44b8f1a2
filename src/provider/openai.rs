//! The `openai` provider (not implemented yet: registered as unconfigured).

use std::sync::Arc;

use super::Provider;
use crate::error::Error;

/// The provider, configured from the file and the environment.
pub fn provider(
    _config: &crate::config::Config,
    _env: &crate::server::Env,
) -> Result<Arc<dyn Provider>, Error> {
    Ok(super::pending(
        "openai",
        "ChatOpenAI",
        "OPENAI_API_KEY or OPENAI_BASE_URL",
    ))
}
