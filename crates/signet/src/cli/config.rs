//! `signet config check`: the effective configuration (defaults, file, environment, flags) as
//! TOML with every secret hidden, or the list of what is wrong with it and a non-zero exit.

use signet::config::strict::effective_toml;
use signet::config::Settings;

use crate::ServeArgs;

pub fn check(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.store.config.as_deref(), args)?;
    settings.check()?;
    print!("{}", effective_toml(&settings));
    Ok(())
}
