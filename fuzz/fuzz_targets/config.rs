//! `gateway.toml` is operator input read on every reload: any text must give a configuration
//! or errors that name a line and a key, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = anteroom::config::parse(Path::new("/nonexistent/fuzz/gateway.toml"), text)
    {
        assert!(!errors.0.is_empty());
        let shown = errors.to_string();
        assert!(shown.contains("gateway.toml"));
    }
});
