//! The TOSCA parser on arbitrary text: it may refuse (with located problems), never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tosca::{Source, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources = [Source {
        name: "fuzz.yaml".into(),
        text: text.to_string(),
    }];
    if let Err(problems) = parse(registry::registry(), &sources) {
        for p in problems {
            // Every problem renders (file:line: node: reason).
            let _ = p.to_string();
        }
    }
});
